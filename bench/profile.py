#!/usr/bin/env python3
"""Where a request's server CPU goes: py-spy on the serving process under wrk load.

    .venv/bin/python bench/profile.py --stacks postgres,embedded --phases writes,reads,mix,assess

Starts the service like bench/run.py (fresh database / Redis prefix, or a SQLite file), seeds it
with bench/seed.lua, then per phase runs wrk for `--duration` seconds while `py-spy record
--format raw` samples the server for the middle of it, and reads the server's CPU seconds from
/proc. Each sample is put in one part of the request (the innermost frame that belongs to a
known part: `PARTS`), and the part's share times the phase's server CPU per request gives
microseconds per request. The raw stacks stay in bench/results/profile-<stamp>/ for a flame
graph (`py-spy record -f flamegraph` gives the SVG) or for a closer look.

Needs py-spy in the venv (`pip install py-spy`) and the rights to trace the server (root, or
`kernel.yama.ptrace_scope=0`). Not part of CI.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from harness import RESULTS, BenchError, Cleanup
from phases import fresh_store
from procfs import cpu_by_pid
from server import Server
from wrk import Wrk

# (part, pattern on "function (file)"), first match from the innermost frame outwards wins.
PARTS = [
    ("access log", r"/logging/|/logs\.py"),
    ("metrics", r"prometheus_client|/metrics\.py"),
    ("middleware (request id, body guard)", r"api/observe\.py|api/body_guard\.py"),
    ("body parse + validate", r"api/body\.py|pydantic|api/schemas\.py|_schemas\.py"),
    ("envelope encoding", r"api/envelope\.py|uuid\.py"),
    ("cache (redis-py / in-process)", r"/redis/|adapters/cache/"),
    ("DB driver + SQLAlchemy", r"/sqlalchemy/|/asyncpg/|/aiosqlite/|/sqlite3/|adapters/db/"),
    ("service + domain", r"viewer_service/services/|viewer_service/domain/|viewer_service/batching\.py"),
    ("route handler", r"viewer_service/api/"),
    ("routing + request/response (FastAPI, Starlette)", r"/fastapi/|/starlette/"),
    ("HTTP server (uvicorn)", r"/uvicorn/|/httptools/|/h11/"),
    ("event loop (asyncio, uvloop)", r"/asyncio/|uvloop"),
]
PHASES = ("writes", "reads", "mix", "assess", "state_update")


def classify(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):  # innermost last in py-spy's raw output
        for part, pat in PARTS:
            if re.search(pat, frame):
                return part
    return "other"


def summarize(raw: Path) -> tuple[Counter, int]:
    parts: Counter = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        # Threads outside the event loop (aiosqlite's, the GC) are counted where their frames say.
        parts[classify(stack)] += int(n)
        total += int(n)
    return parts, total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stacks", default="postgres,embedded")
    p.add_argument("--phases", default="writes,reads,mix,assess")
    p.add_argument("--duration", "-d", type=int, default=12, help="seconds of wrk per phase")
    p.add_argument("--learners", type=int, default=2000)
    p.add_argument("--contents", type=int, default=5)
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--server-env", action="append", default=[], metavar="VIEWER_X=VALUE")
    args = p.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        print("bench: py-spy not found; pip install py-spy into the venv", file=sys.stderr)
        return 2
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    outdir = RESULTS / f"profile-{stamp}"
    outdir.mkdir(parents=True, exist_ok=True)
    lines = [f"# Server profile, {stamp}", ""]
    for stack in args.stacks.split(","):
        cleanup = Cleanup()
        try:
            lines += profile_stack(args, stack, spy, outdir, cleanup)
        except BenchError as e:
            lines += [f"## {stack}: FAILED: {e}", ""]
        finally:
            cleanup.run()
    text = "\n".join(lines)
    (RESULTS / f"profile-{stamp}.md").write_text(text)
    print(text)
    print(f"bench: report {RESULTS / f'profile-{stamp}.md'}, raw stacks in {outdir}/", file=sys.stderr)
    return 0


def profile_stack(args, stack: str, spy: str, outdir: Path, cleanup: Cleanup) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(kv.split("=", 1) for kv in args.server_env)
    db, _ = fresh_store(args, stack, stack, env, cleanup)
    server = Server(env, 1, db is not None, outdir / f"{stack}.server.log")  # SQLite: serve migrates its file
    cleanup.push("server", server.stop)
    server.start(90)
    wrk = Wrk(shutil.which("wrk"), 1, 64, 5, False, outdir / f"{stack}.wrk.log", cleanup)
    common = [f"learners={args.learners}", f"contents={args.contents}"]
    for mode in ("start", "read"):
        r = wrk.run("seed", server, 3600, common + [f"mode={mode}", "threads=1"], seed_mode=True, limit_s=900)
        if r.data["counters"]["seed_bad"]:
            raise BenchError(f"seeding ({mode}) got non-2xx answers")
    server.put_json("/v1/context/bench_batch", {"request": {"type": "batch", "collectionIds": ["bench_course"]}})
    out = [f"## {stack}", "",
           "| phase | req/s | server CPU µs/req | " + " | ".join(p for p, _ in PARTS) + " | other |",
           "|---|---:|---:|" + "---:|" * (len(PARTS) + 1)]
    for phase in args.phases.split(","):
        wrk.run(phase, server, 2, common + [f"seed=77", f"tag=w{secrets.token_hex(3)}"])  # warm-up
        raw = outdir / f"{stack}-{phase}.txt"
        pid = server.proc.pid
        cpu0 = cpu_by_pid([pid])[pid]
        spy_proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(max(1, args.duration - 4)),
                                     "--rate", str(args.rate), "--format", "raw", "--full-filenames",
                                     "--nonblocking", "-o", str(raw)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cleanup.push("py-spy", spy_proc.kill)
        r = wrk.run(phase, server, args.duration, common + ["seed=5", f"tag=p{secrets.token_hex(3)}"])
        spy_proc.wait(timeout=60)
        cpu = cpu_by_pid([pid])[pid] - cpu0
        us = cpu / max(1, int(r.data["requests"])) * 1e6
        parts, total = summarize(raw)
        cells = [f"{parts[p] / total * us:.0f}" if total else "n/a" for p, _ in PARTS]
        out.append(f"| {phase} | {r.rps:,.0f} | {us:.0f} | " + " | ".join(cells) +
                   f" | {parts['other'] / total * us:.0f} |" if total else f"| {phase} | no samples |")
        print(f"bench: [{stack}] {phase}: {r.rps:.0f} req/s, {us:.0f} µs CPU/req, {total} samples", file=sys.stderr)
    out += ["", "Parts in µs of server CPU per request (the part's share of py-spy's samples × CPU/req; "
            "CPU/req is measured with py-spy attached, which adds a little).", ""]
    return out


if __name__ == "__main__":
    sys.exit(main())

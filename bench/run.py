#!/usr/bin/env python3
"""Benchmark viewer-service against a floor, on the embedded stack and on PostgreSQL + Redis.

    .venv/bin/python bench/run.py --quick     # short smoke run (~2-3 minutes)
    .venv/bin/python bench/run.py             # the recorded run (15 s phases, 3 repeats)

For each stack (embedded: SQLite file in a temp dir + in-process cache; postgres: a fresh
PostgreSQL database + Redis under a fresh key prefix) and each worker count, it starts
`viewer-service serve` as a subprocess, waits for /health, seeds learners x contents views
with wrk (bench/seed.lua), warms up, then runs the phases floor, writes, reads, mix, assess_floor, assess
(bench/<phase>.lua) `--repeats` times, interleaved, and reports medians and ratios to the floor
measured in the same server run. Everything it created (server processes, database, Redis keys,
temp dir) is removed at the end, also on Ctrl-C or failure.

Not part of CI: it is never collected by pytest. Needs only the standard library, plus asyncpg
and redis (both in the service's venv) for the postgres stack, and wrk (`apt-get install wrk`).
"""

from __future__ import annotations

# The pieces: phases.py (one configuration, phase by phase), wrk.py (load generation), server.py (the
# service and floor processes), procfs.py (CPU and memory), run_report.py (the report), harness.py.

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

from harness import RESULTS, install_signals
from phases import PHASES, STACK_LABEL, ConfigResult, run_config
from procfs import machine_info
from run_report import report, summarize, to_json, versions


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="short run: 5 s phases, 1 repeat, 2,000 learners, 1 s warm-up (explicit flags win)")
    p.add_argument("--stacks", default="embedded,postgres", help="comma list of embedded, postgres")
    p.add_argument("--workers", default="1", help="comma list of worker counts, e.g. 1,2 (>1: postgres only)")
    p.add_argument("--phases", default=",".join(PHASES), help="comma list of phases to run, in this order (all)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--connections", "-c", type=int, default=64, help="wrk connections")
    p.add_argument("--duration", "-d", type=int, default=None, help="seconds per measured phase (15)")
    p.add_argument("--repeats", type=int, default=None, help="repeats of every phase, interleaved (3)")
    p.add_argument("--warmup", type=int, default=None, help="seconds of each phase before measuring (2)")
    p.add_argument("--learners", type=int, default=None, help="learners pre-seeded (20000)")
    p.add_argument("--contents", type=int, default=5, help="contents per learner in the collection")
    p.add_argument("--seed", type=int, default=1, help="random seed for the request streams")
    p.add_argument("--wrk-timeout", type=int, default=5, help="wrk request timeout, seconds")
    p.add_argument("--seed-timeout", type=int, default=1200, help="limit for each seeding pass, seconds")
    p.add_argument("--startup-timeout", type=int, default=90, help="limit for /health to answer, seconds")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="PostgreSQL maintenance database URL (a fresh database is created next to it)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--diag", action="store_true",
                   help="count every response by endpoint and status in Lua (costs client CPU; for debugging)")
    p.add_argument("--out", default=str(RESULTS), help="directory for the report, JSON and logs")
    p.add_argument("--server-env", action="append", default=[], metavar="VIEWER_X=VALUE",
                   help="an environment variable for the server (repeatable), e.g. VIEWER_METRICS=false")
    a = p.parse_args(argv)
    for kv in a.server_env:
        if "=" not in kv:
            p.error(f"--server-env needs NAME=VALUE, got {kv!r}")
    q = a.quick
    a.duration = a.duration if a.duration is not None else (5 if q else 15)
    a.repeats = a.repeats if a.repeats is not None else (1 if q else 3)
    a.warmup = a.warmup if a.warmup is not None else (1 if q else 2)
    a.learners = a.learners if a.learners is not None else (2000 if q else 20000)
    a.stacks = [s.strip() for s in a.stacks.split(",") if s.strip()]
    a.phases = [s.strip() for s in a.phases.split(",") if s.strip()]
    if set(a.phases) - set(PHASES):
        p.error(f"unknown phase in {a.phases} ({', '.join(PHASES)})")
    a.workers = [int(w) for w in a.workers.split(",") if w.strip()]
    for s in a.stacks:
        if s not in STACK_LABEL:
            p.error(f"unknown stack {s!r} (embedded, postgres)")
    if a.connections < a.threads:
        p.error("--connections must be at least --threads")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_exe = shutil.which("wrk")
    if not wrk_exe:
        print("bench: wrk not found. Install it: apt-get install wrk", file=sys.stderr)
        return 2
    if "postgres" in args.stacks:
        try:
            import asyncpg  # noqa: F401
            import redis  # noqa: F401
        except ImportError as e:
            print(f"bench: the postgres stack needs asyncpg and redis ({e}); run with .venv/bin/python",
                  file=sys.stderr)
            return 2
    install_signals()
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_root = Path(args.out)
    outdir = out_root / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    vers = versions(args, wrk_exe, args.stacks)
    results: list[ConfigResult] = []
    interrupted = False
    try:
        for stack in args.stacks:
            for w in args.workers:
                run_config(args, stack, w, outdir, wrk_exe, results)
    except KeyboardInterrupt as e:
        interrupted = True
        print(f"bench: interrupted ({str(e) or 'Ctrl-C'}); cleaned up", file=sys.stderr)
        if os.environ.get("BENCH_DEBUG"):
            import traceback
            traceback.print_exc()
    text = report(args, started, machine, vers, results)
    if interrupted:
        text += "\n**Interrupted before the end: partial results.**\n"
    md = out_root / f"{stamp}.md"
    md.write_text(text)
    (out_root / f"{stamp}.json").write_text(json.dumps(to_json(args, started, machine, vers, results), indent=1,
                                                       default=str))
    print(text)
    print(f"bench: report {md}, raw data {out_root / (stamp + '.json')}, logs {outdir}/", file=sys.stderr)
    failed = interrupted or any(r.error for r in results) or any(
        p["non2xx"] or p["timeouts"] for r in results for p in summarize(r).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Process scaling: `serve --workers N` on PostgreSQL + Redis for N = 1, 2, 4, side by side.

    .venv/bin/python bench/procs.py --quick                               # smoke run (~2 minutes)
    flock /work/wt/bench.lock .venv/bin/python bench/procs.py             # recorded: 5 s phases, 3 repeats

One fresh database and Redis key prefix, seeded once (bench/seed.lua through the 1-process
server). One server per N, all started before measuring and all on that database and prefix, so
the cache is warm for every one; then rounds of floor, reads, writes (bench/<phase>.lua), each
phase run against N = 1, 2, 4 in turn (floor@1, floor@2, floor@4, reads@1, ...), so a noisy
neighbour hits every N alike. The floor is the fixed floor app (bench/floor_app.py, one uvicorn
process, no I/O), measured in each N's turn: the same reference for every N. Reported: medians, and the median over rounds
of each N's req/s ÷ the 1-process req/s of the same phase and round; CPU (cores) of every serving
process, of wrk, of PostgreSQL, of Redis and of the rest of the machine, so the report shows where
the cores went.

wrk runs pinned to --wrk-cpus (this script pins itself; wrk inherits it), the servers to
--server-cpus (`taskset`). On 2 cores nothing can keep wrk off the servers' cores: the default
puts wrk on the last CPU and lets the servers use all of them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sys
from pathlib import Path

from harness import RESULTS, ROOT, BenchError, Cleanup, PgDatabase, RedisPrefix, _sigterm, med
from phases import ConfigResult, seed_views
from procfs import NCPU, machine_info
from run_report import summarize, versions
from server import FloorServer, Server, service_command
from wrk import Wrk

PHASES = ("floor", "reads", "writes", "mix")


def cpu_list(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="3 s phases, 1 repeat, 1,000 learners")
    p.add_argument("--workers", default="1,2,4", help="comma list of serving process counts (the first is the base)")
    p.add_argument("--phases", default="floor,reads,writes", help=f"comma list of {', '.join(PHASES)}")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads")
    p.add_argument("--connections", "-c", type=int, default=64, help="wrk connections")
    p.add_argument("--duration", "-d", type=int, default=None, help="seconds per measured phase (5)")
    p.add_argument("--repeats", type=int, default=None, help="rounds (3)")
    p.add_argument("--warmup", type=int, default=2, help="seconds of each phase on each server before measuring")
    p.add_argument("--learners", type=int, default=None, help="learners pre-seeded (5000)")
    p.add_argument("--contents", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--wrk-timeout", type=int, default=5)
    p.add_argument("--seed-timeout", type=int, default=1200)
    p.add_argument("--startup-timeout", type=int, default=120)
    p.add_argument("--wrk-cpus", default=str(NCPU - 1), help="CPUs wrk may run on (e.g. 1, 0-1)")
    p.add_argument("--server-cpus", default=f"0-{NCPU - 1}", help="CPUs the serving processes may run on")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    a.duration = a.duration or (3 if a.quick else 5)
    a.repeats = a.repeats or (1 if a.quick else 3)
    a.learners = a.learners or (1000 if a.quick else 5000)
    a.workers = [int(w) for w in a.workers.split(",")]
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    if set(a.phases) - set(PHASES):
        p.error(f"unknown phase in {a.phases}")
    a.diag, a.server_env = False, []
    return a


def measure(args, outdir: Path, wrk_exe: str) -> dict[int, ConfigResult]:
    cleanup = Cleanup()
    results = {n: ConfigResult("postgres", n, f"{n} process{'es' if n > 1 else ''}") for n in args.workers}
    try:
        db = PgDatabase(args.pg_url)
        db.create()
        cleanup.push(f"database {db.name}", db.drop)
        prefix = RedisPrefix(args.redis_url)
        cleanup.push(f"redis keys {prefix.prefix}*", prefix.delete)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VIEWER_", "PROMETHEUS_"))}
        env.update(VIEWER_DATABASE_URL=db.url, VIEWER_REDIS_URL=args.redis_url,
                   VIEWER_REDIS_PREFIX=prefix.prefix)
        servers: dict[int, Server] = {}
        for i, n in enumerate(args.workers):
            servers[n] = Server(env, n, i == 0, outdir / f"w{n}.server.log")  # the first one migrates
            cleanup.push(f"server w{n}", servers[n].stop)
            results[n].startup_s = servers[n].start(args.startup_timeout)
            print(f"bench: {n} process(es) up on {servers[n].url}, pids {servers[n].pids()}", file=sys.stderr)
        floor = FloorServer(outdir / "floor.log")
        cleanup.push("floor server", floor.stop)
        floor.start(args.startup_timeout)
        target = lambda phase, n: floor if phase == "floor" else servers[n]  # noqa: E731
        wrk = Wrk(wrk_exe, args.threads, args.connections, args.wrk_timeout, False, outdir / "wrk.log", cleanup)
        base = servers[args.workers[0]]
        results[args.workers[0]].seed = seed_views(args, wrk, base, f"w{args.workers[0]}", base.log_path)
        common = [f"learners={args.learners}", f"contents={args.contents}"]
        for phase in args.phases:
            for n in args.workers:
                wrk.run(phase, target(phase, n), args.warmup, common + [f"seed={args.seed + 999}", f"tag=w{secrets.token_hex(3)}"])
        for rep in range(args.repeats):
            for phase in args.phases:
                for n in args.workers:
                    if not servers[n].alive():
                        raise BenchError(f"the {n}-process server died; log {servers[n].log_path}")
                    extra = [f"seed={args.seed * 100 + rep}", f"tag=r{rep}x{secrets.token_hex(3)}"]
                    r = wrk.run(phase, target(phase, n), args.duration, common + extra)
                    results[n].runs[phase].append(r)
                    per = " / ".join(f"{w / r.wall_s:.2f}" for w in r.worker_cpu_s)
                    print(f"bench: round {rep + 1} {phase:6} {n} proc: {r.rps:8.0f} req/s  p99 "
                          f"{r.lat_ms('p99'):6.2f} ms  server CPU {r.server_cpu_s / r.wall_s:.2f} ({per})  "
                          f"wrk {r.wrk_cpu_s / r.wall_s:.2f}  PostgreSQL {r.services_cpu_s['PostgreSQL'] / r.wall_s:.2f}"
                          f"  Redis {r.services_cpu_s['Redis'] / r.wall_s:.2f}"
                          f"{'' if r.valid else f'  INVALID: non-2xx {r.non2xx}, timeouts {r.timeouts}'}",
                          file=sys.stderr)
        for n in args.workers:
            results[n].memory.append(("end", servers[n].memory()))
    except BenchError as e:
        for r in results.values():
            r.error = str(e)
        print(f"bench: FAILED: {e}", file=sys.stderr)
    finally:
        cleanup.run()
    return results


def report(args, started, machine, vers, results: dict[int, ConfigResult]) -> str:
    first = args.workers[0]
    s = {n: summarize(r) for n, r in results.items()}
    L = [f"# viewer-service process scaling, {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}", "",
         f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), Linux {machine['kernel']}, Python "
         f"{machine['python']}. Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".", "",
         f"`serve --workers N` for N = {', '.join(map(str, args.workers))} on PostgreSQL + Redis, one database, "
         f"{args.learners:,} learners × {args.contents} contents seeded; `wrk -t{args.threads} -c{args.connections} "
         f"-d{args.duration}s`, {args.repeats} round(s), phases interleaved across N; wrk on CPU(s) {args.wrk_cpus}, "
         f"servers on CPU(s) {args.server_cpus}. × {first}: median over rounds of req/s ÷ the {first}-process "
         f"req/s of the same phase and round. × floor: ÷ the fixed floor app (`bench/floor_app.py`, 1 process, no I/O) in the {first}-process turn. "
         "CPU in cores (CPU seconds ÷ wall seconds); serving processes busiest first.", "",
         f"| phase | N | req/s | × {first} | × floor@{first} | p50 ms | p99 ms | server CPU (per process) | server CPU µs/req | "
         "wrk | PostgreSQL | Redis | rest | machine busy | req/s per round |",
         "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for phase in args.phases:
        for n in args.workers:
            p = s[n].get(phase)
            if not p:
                continue
            base_runs = results[first].runs[phase]
            per_round = [r.rps / b.rps for r, b in zip(results[n].runs[phase], base_runs) if b.rps]
            fl = s[first].get("floor")
            per = " / ".join(f"{w:.2f}" for w in p["worker_cpu"]) or f"{p['server_cpu']:.2f}"
            L.append(f"| {phase} | {n} | {p['rps']:,.0f} | {med(per_round):.2f} | "
                     f"{p['rps'] / fl['rps'] if fl else float('nan'):.2f} | {p['p50']:.2f} | {p['p99']:.2f} | "
                     f"{p['server_cpu']:.2f} ({per}) | {p['cpu_us_per_req']:.0f} | {p['wrk_cpu']:.2f} | {p['pg_cpu']:.2f} | {p['redis_cpu']:.2f} | "
                     f"{p['other_cpu']:.2f} | {p['machine_busy'] * NCPU:.2f} | "
                     f"{', '.join(f'{x:,.0f}' for x in p['rps_all'])} |")
    bad = [(n, ph) for n, x in s.items() for ph, p in x.items() if p["non2xx"] or p["timeouts"]]
    if bad:
        L += ["", f"**INVALID**: non-2xx answers or timeouts in {bad}."]
    errors = {r.error for r in results.values() if r.error}
    if errors:
        L += ["", f"**FAILED**: {'; '.join(e.splitlines()[0] for e in errors)}"]
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_exe = shutil.which("wrk")
    if not wrk_exe or not shutil.which("taskset"):
        print("bench: needs wrk and taskset (apt-get install wrk util-linux)", file=sys.stderr)
        return 2
    # The servers are started through taskset; wrk inherits this process's CPUs.
    os.environ["BENCH_SERVICE_CMD"] = f"taskset -c {args.server_cpus} {service_command()[0]}"
    os.sched_setaffinity(0, cpu_list(args.wrk_cpus))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    started = dt.datetime.now().astimezone()
    stamp = f"procs-{started.strftime('%Y%m%d-%H%M%S')}"
    out_root = Path(args.out)
    outdir = out_root / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    machine, vers = machine_info(), versions(args, wrk_exe, ["postgres"])
    try:
        results = measure(args, outdir, wrk_exe)
    except KeyboardInterrupt:
        print("bench: interrupted; cleaned up", file=sys.stderr)
        return 1
    text = report(args, started, machine, vers, results)
    (out_root / f"{stamp}.md").write_text(text)
    (out_root / f"{stamp}.json").write_text(json.dumps(
        {"args": vars(args), "machine": machine, "versions": vers,
         "summary": {n: summarize(r) for n, r in results.items()}}, indent=1, default=str))
    print(text)
    print(f"bench: report {out_root / (stamp + '.md')}, logs {os.path.relpath(outdir, ROOT)}/", file=sys.stderr)
    failed = any(r.error for r in results.values()) or any(
        p["non2xx"] or p["timeouts"] for r in results.values() for p in summarize(r).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

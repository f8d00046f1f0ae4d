#!/usr/bin/env python3
"""Benchmark the aggregation worker: recompute throughput against a floor, and end-to-end lag.

    .venv/bin/python bench/worker.py --quick     # smoke run, both stacks (< 1 minute)
    .venv/bin/python bench/worker.py             # the recorded run (a few minutes)

Per stack (sqlite: a SQLite file in a temp dir; postgres: a fresh database
`viewer_bench_w_<hex>`, plus Redis under a fresh key prefix for the lag part):

1. Throughput. N learners, each with 50 completed rows in one scope of a 50-leaf collection
   (5 units x 10 leaves), an active enrolment and a dirty mark. `AggregationWorker.run_once()`
   runs until the queue is empty; repeat 1 completes every enrolment (and queues its 2 outbox
   events), repeats 2..R recompute already completed scopes ("steady"). The floor, same data,
   same process, interleaved with the worker's repeats: the same claim of 100 scopes per round,
   then per scope one transaction that reads the 50 raw rows and writes what the worker writes
   (6 aggregate rows replaced, the enrolment updated, the mark deleted) with constant values.
2. End-to-end lag. `viewer-service serve` (plus `viewer-service worker` on PostgreSQL) as
   subprocesses; learners enrol and start+end the 5 leaves of a collection over HTTP; the time
   from the acknowledgement of a learner's last view end until the enrolment's completed_on is
   visible in the database, and until its enrol-complete event is in the file sink.

Everything it creates (databases, Redis keys, temp dirs, processes) is removed at the end,
also on Ctrl-C or failure. Not part of CI (pytest only collects tests/). Run it with the
service's venv: it imports viewer_service, SQLAlchemy, asyncpg, redis and httpx from there.
"""

from __future__ import annotations

# The pieces: worker_throughput.py (part 1), worker_lag.py (part 2), worker_report.py (the report);
# shared with bench/run.py: harness.py, procfs.py, server.py.

import argparse
import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path

from harness import RESULTS, ROOT, BenchError, install_signals, sayer
from procfs import machine_busy_sample
from worker_lag import run_lag
from worker_report import LABEL, report, versions
from worker_throughput import LOG_COUNTER, run_throughput

say = sayer("bench-worker")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small numbers (200 learners, 2 repeats, 40 + 5 lag learners): under a minute")
    p.add_argument("--stacks", default="sqlite,postgres", help="comma list of sqlite, postgres")
    p.add_argument("--learners", type=int, default=None, help="throughput: learners, one scope each (2000)")
    p.add_argument("--repeats", type=int, default=None, help="throughput: worker and floor passes (3)")
    p.add_argument("--lag-learners", type=int, default=None, help="lag: learners of the loaded phase (200)")
    p.add_argument("--lag-concurrency", type=int, default=20, help="lag: learners in flight at once (20)")
    p.add_argument("--idle-learners", type=int, default=None, help="lag: learners of the idle phase (20)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: throughput, lag")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
                   help="PostgreSQL maintenance database URL (fresh databases are created next to it)")
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--out", default=str(RESULTS), help="directory for the report and the server logs")
    a = p.parse_args(argv)
    q = a.quick
    a.learners = a.learners if a.learners is not None else (200 if q else 2000)
    a.repeats = a.repeats if a.repeats is not None else (2 if q else 3)
    a.lag_learners = a.lag_learners if a.lag_learners is not None else (40 if q else 200)
    a.idle_learners = a.idle_learners if a.idle_learners is not None else (5 if q else 20)
    a.stacks = [s.strip() for s in a.stacks.split(",") if s.strip()]
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    for s in a.stacks:
        if s not in LABEL:
            p.error(f"unknown stack {s!r} (sqlite, postgres)")
    if a.learners < 1 or a.repeats < 1 or a.lag_learners < 1 or a.idle_learners < 0:
        p.error("--learners, --repeats and --lag-learners must be at least 1")
    return a


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        import httpx  # noqa: F401
        import viewer_service  # noqa: F401
    except ImportError as e:
        print(f"bench-worker: {e}; run it with the service's venv: .venv/bin/python bench/worker.py", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(LOG_COUNTER)
    install_signals()
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_root = Path(args.out)
    logdir = out_root / f"worker-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)
    load = machine_busy_sample(1.0)
    vers = versions(args)
    results: dict[str, dict] = {}
    failed = interrupted = False
    try:
        for stack in args.stacks:
            r = results[stack] = {}
            if "throughput" not in args.skip:
                try:
                    r["throughput"] = run_throughput(stack, args)
                except (BenchError, Exception) as e:  # noqa: BLE001 - report it, go on
                    failed = True
                    r["throughput_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    say(f"[{stack}] throughput FAILED: {e!r}")
            if "lag" not in args.skip:
                try:
                    r["lag"] = run_lag(stack, args, logdir)
                except (BenchError, Exception) as e:  # noqa: BLE001
                    failed = True
                    r["lag_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                    say(f"[{stack}] lag FAILED: {e!r}")
    except KeyboardInterrupt as e:
        interrupted = True
        say(f"interrupted ({str(e) or 'Ctrl-C'}); cleaned up")
    text = report(args, started, load, vers, results, argv)
    if interrupted:
        text += "\n**Interrupted**: the figures above are partial.\n"
    path = out_root / f"worker-{stamp}.md"
    path.write_text(text)
    (out_root / f"worker-{stamp}.json").write_text(json.dumps({"args": {k: (sorted(v) if isinstance(v, set) else v)
                                                                         for k, v in vars(args).items()},
                                                                "versions": vers, "results": results},
                                                               indent=1, default=str))
    if not any(logdir.iterdir()):
        logdir.rmdir()
    print(text)
    say(f"report written to {os.path.relpath(path, ROOT)}")
    return 130 if interrupted else (1 if failed else 0)


if __name__ == "__main__":
    sys.exit(main())

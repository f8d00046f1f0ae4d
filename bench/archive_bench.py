"""Archive benchmark (docs/archive.md): hot-table size and the read/write benchmark before and
after archiving 90 % of a 10^6-row consumption table, on PostgreSQL + Redis.

    flock /work/wt/bench.lock .venv/bin/python bench/archive_bench.py            # recorded
    .venv/bin/python bench/archive_bench.py --rows 100000 --duration 3 --repeats 1              # smoke

1. A fresh database gets `--rows` consumption rows by bulk SQL (generate_series): learners x 5
   contents of one collection, each row with progress details; one 10-question attempt per learner
   (content 1); one enrolment per learner. The first `--hot-fraction` of learners are in progress;
   the others completed during 2024.
2. Before: table sizes. Each server: 1 worker, PostgreSQL + Redis; cold reads of hot learners (cache
   misses, sequential, median ms); wrk seeding reads of every hot learner; then `--repeats` rounds of
   floor, writes, reads, mix (bench/*.lua, the same scripts as bench/run.py) on the hot learners.
3. `viewer-service archive --completed-before 2025-01-01` on the copy: wall time, rows/s, file sizes.
4. After: table sizes (as left, after VACUUM, after VACUUM FULL). The archive runs on a copy of the
   database (CREATE DATABASE .. TEMPLATE), so a "before" and an "after" server (each its own Redis
   prefix) run side by side: cold reads of hot (and, after, of archived) learners, seeding, then the
   wrk rounds alternate between them (before, after; after, before; ...), so load from other
   processes on a shared machine falls on both alike.
Medians of the repeats and ratios to the floor of the same server; the report goes to stdout and
to bench/results/archive-<timestamp>.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import BenchError, Cleanup, PgDatabase, RedisPrefix, med, pg_exec, with_dbname  # noqa: E402
from server import FloorServer, Server, service_command  # noqa: E402
from wrk import Wrk  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PHASES = ("floor", "writes", "reads", "mix")
TABLES = ("user_content_consumption", "assessment_aggregator", "archived_consumption", "enrolment")

GENERATE = """
INSERT INTO user_content_consumption
SELECT 'bench_u' || i, 'bench_course', 'bench_batch', 'do_bench_' || j,
       CASE WHEN i < {hot} THEN 1 ELSE 2 END, CASE WHEN i < {hot} THEN 50 ELSE 100 END,
       jsonb_build_object('position', (i * 7 + j) % 3600, 'mimeType', 'video/mp4', 'duration', 3600,
                          'visited', jsonb_build_array(1, 2, 3, 5, 8, 13), 'stage', 'stage-' || j),
       {t0} + i, 300.5, 2, {t0} + i, {t0} + i + 60,
       CASE WHEN i < {hot} THEN NULL ELSE {t0} + i + 120 END, {t0} + i + 120, ({t0} + i + 120) * 1000,
       CASE WHEN j = 1 THEN 7 ELSE NULL END, CASE WHEN j = 1 THEN 10 ELSE NULL END,
       CASE WHEN j = 1 THEN 'att-' || i ELSE NULL END, CASE WHEN j = 1 THEN 1 ELSE 0 END, NULL
FROM generate_series(0, {learners} - 1) AS i, generate_series(1, {contents}) AS j;

INSERT INTO assessment_aggregator
SELECT 'bench_u' || i, 'bench_course', 'bench_batch', 'do_bench_1', 'att-' || i, {t0} + i, {t0} + i, {t0} + i,
       7, 10, '7.0/10.0',
       (SELECT jsonb_agg(jsonb_build_object('id', 'do_q' || q, 'score', CASE WHEN q <= 7 THEN 1 ELSE 0 END,
                                            'max_score', 1, 'type', 'mcq', 'title', 'Question ' || q,
                                            'description', '', 'resvalues', jsonb_build_array(jsonb_build_object('1', '{{"text":"answer"}}')),
                                            'params', jsonb_build_array(jsonb_build_object('1', '{{"text":"option"}}')),
                                            'duration', 12, 'assess_ts', {t0} + i + q))
        FROM generate_series(1, 10) AS q)
FROM generate_series(0, {learners} - 1) AS i;

INSERT INTO enrolment (user_id, collection_id, context_id, enrolled_date, active, issued_certificates, status,
                       progress, completed_on, updated_at)
SELECT 'bench_u' || i, 'bench_course', 'bench_batch', {t0}, true, '[]'::jsonb,
       CASE WHEN i < {hot} THEN 1 ELSE 2 END, CASE WHEN i < {hot} THEN 50 ELSE 100 END,
       CASE WHEN i < {hot} THEN NULL ELSE {t0} + (i % 360)::bigint * 86400000 END, {t0}
FROM generate_series(0, {learners} - 1) AS i;
ANALYZE;
"""

SIZES = "SELECT json_build_object(" + ", ".join(
    f"'{t}', json_build_array(pg_total_relation_size('{t}'), (SELECT count(*) FROM {t}))" for t in TABLES) + ")::text"


def sizes(url: str) -> dict:
    got = json.loads(pg_exec(url, SIZES, fetch=True))
    return {t: {"bytes": int(got[t][0]), "rows": int(got[t][1])} for t in TABLES}


def post(url: str, path: str, body: dict) -> float:
    data = json.dumps({"request": body}).encode()
    req = urllib.request.Request(url + path, data=data, headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()
        if r.status != 200:
            raise BenchError(f"{path}: {r.status}")
    return (time.perf_counter() - t0) * 1000


def cold_reads(server: Server, users: list[str], contents: int) -> float:
    """Median ms of one view/read of a learner's whole scope, each the first read of that scope."""
    ids = [f"do_bench_{j}" for j in range(1, contents + 1)]
    return statistics.median(post(server.url, "/v1/view/read", {
        "userId": u, "collectionId": "bench_course", "contextId": "bench_batch", "contentId": ids}) for u in users)


def prepare(args, wrk: Wrk, floor: FloorServer, env: dict, log: Path, label: str, cleanup: Cleanup, hot: int,
            learners: int):
    """A server on one database: cold reads (cache misses), then every hot learner read once (warm)."""
    server = Server(env, 1, False, log)
    cleanup.push(f"server {label}", server.stop)
    server.start(120)
    rnd = random.Random(args.seed)
    out = {"cold_hot_ms": cold_reads(server, [f"bench_u{rnd.randrange(hot)}" for _ in range(args.cold)],
                                     args.contents)}
    if label == "after":
        out["cold_archived_ms"] = cold_reads(
            server, [f"bench_u{rnd.randrange(hot, learners)}" for _ in range(args.cold)], args.contents)
    common = [f"learners={hot}", f"contents={args.contents}"]
    r = wrk.run("seed", server, 3600, common + ["mode=read", f"threads={args.threads}"], seed_mode=True,
                limit_s=600)
    if r.data["counters"]["seed_bad"]:
        raise BenchError(f"seed reads: non-2xx {r.data['tables']}")
    for phase in PHASES:
        wrk.run(phase, floor if phase == "floor" else server, 2, common + [f"seed={args.seed + 999}", f"tag=w{secrets.token_hex(3)}"])
    out["runs"] = {p: [] for p in PHASES}
    return server, out


def start_floor(outdir: Path, cleanup: Cleanup) -> FloorServer:
    """The fixed floor app (bench/floor_app.py), one for both servers: the ratios' common reference."""
    floor = FloorServer(outdir / "floor.log")
    cleanup.push("floor server", floor.stop)
    floor.start(120)
    return floor


def one_round(args, wrk: Wrk, floor: FloorServer, server: Server, out: dict, label: str, rep: int, hot: int) -> None:
    common = [f"learners={hot}", f"contents={args.contents}"]
    for phase in PHASES:
        r = wrk.run(phase, floor if phase == "floor" else server, args.duration, common + [f"seed={args.seed * 100 + rep}",
                                                            f"tag={label[0]}{rep}x{secrets.token_hex(3)}"])
        if not r.valid:
            raise BenchError(f"{label} {phase}: non-2xx {r.non2xx}, timeouts {r.timeouts}")
        out["runs"][phase].append({"rps": r.rps, "p50": r.lat_ms("p50"), "p99": r.lat_ms("p99")})
        print(f"bench: [{label}] {phase} #{rep + 1}: {r.rps:8.0f} req/s  p50 {r.lat_ms('p50'):6.2f} ms  "
              f"p99 {r.lat_ms('p99'):6.2f} ms", file=sys.stderr)


def medians(out: dict) -> None:
    out["median"] = {p: {k: med([x[k] for x in out["runs"][p]]) for k in ("rps", "p50", "p99")} for p in PHASES}


def after_only(args, learners: int, hot: int, outdir: Path, started) -> int:
    """The 'after' phase alone, on a database an interrupted run left archived (its sizes too)."""
    cleanup = Cleanup()
    url = with_dbname(args.pg_url, args.after_only)
    result = {"sizes_now": sizes(url)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    prefix = RedisPrefix(args.redis_url)
    env.update(VIEWER_DATABASE_URL=url, VIEWER_REDIS_URL=args.redis_url,
               VIEWER_WORKER_IN_SERVE="false", VIEWER_REDIS_PREFIX=prefix.prefix)
    cleanup.push(f"redis keys {prefix.prefix}*", prefix.delete)
    try:
        wrk = Wrk("wrk", args.threads, args.connections, 10, False, outdir / "wrk.log", cleanup)
        floor = start_floor(outdir, cleanup)
        server, result["after"] = prepare(args, wrk, floor, env, outdir / "after.server.log", "after", cleanup, hot,
                                          learners)
        for rep in range(args.repeats):
            one_round(args, wrk, floor, server, result["after"], "after", rep, hot)
        medians(result["after"])
    finally:
        cleanup.run()
    print(json.dumps(result, indent=1))
    return 0


def du(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.parquet"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--contents", type=int, default=5)
    p.add_argument("--hot-fraction", type=float, default=0.1)
    p.add_argument("--duration", type=int, default=8, help="seconds per measured wrk phase")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cold", type=int, default=300, help="sequential cold reads measured")
    p.add_argument("-t", "--threads", type=int, default=1)
    p.add_argument("-c", "--connections", type=int, default=64)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--lock", metavar="FILE", help="take this flock only for the servers and wrk rounds (the "
                   "generation and the archive run before it, unlocked: their times are then indicative)")
    p.add_argument("--check", action="store_true", help="generate, archive and measure sizes only (no servers, no wrk)")
    p.add_argument("--after-only", metavar="DBNAME", help="measure the 'after' phase on an existing archived database")
    args = p.parse_args(argv)
    learners = args.rows // args.contents
    hot = int(learners * args.hot_fraction)
    started = dt.datetime.now(dt.UTC)
    outdir = ROOT / "bench" / "results" / f"archive-{started:%Y%m%dT%H%M%S}"
    outdir.mkdir(parents=True, exist_ok=True)
    cleanup = Cleanup()
    result: dict = {"rows": args.rows, "learners": learners, "hot_learners": hot, "contents": args.contents}
    if args.after_only:
        return after_only(args, learners, hot, outdir, started)
    try:
        db = PgDatabase(args.pg_url)
        db.create()
        cleanup.push(f"database {db.name}", db.drop)
        archive_dir = tempfile.mkdtemp(prefix="viewer-archive-bench-")
        cleanup.push(f"archive dir {archive_dir}", lambda: subprocess.run(["rm", "-rf", archive_dir]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
        env.update(VIEWER_DATABASE_URL=db.url, VIEWER_REDIS_URL=args.redis_url,
                   VIEWER_WORKER_IN_SERVE="false")
        subprocess.run(service_command() + ["db", "upgrade"], env=env, check=True, capture_output=True)
        t0 = time.monotonic()
        t_base = 1_704_067_200_000  # 2024-01-01
        pg_exec(db.url, GENERATE.format(hot=hot, learners=learners, contents=args.contents, t0=t_base))
        result["generate_s"] = time.monotonic() - t0
        print(f"bench: generated {args.rows} rows in {result['generate_s']:.0f} s", file=sys.stderr)
        result["sizes_before"] = sizes(db.url)
        # The same data twice: the "after" database is a copy that gets archived, so both servers run
        # side by side and their rounds interleave (a busy shared machine hits both alike).
        arch = PgDatabase(args.pg_url)
        pg_exec(args.pg_url, f'CREATE DATABASE "{arch.name}" TEMPLATE "{db.name}"')
        arch.created = True
        cleanup.push(f"database {arch.name}", arch.drop)
        arch_env = {**env, "VIEWER_DATABASE_URL": arch.url}
        t0 = time.monotonic()
        out = subprocess.run(service_command() + ["archive", "--completed-before", "2025-01-01", "--dir", archive_dir],
                             env=arch_env, capture_output=True, text=True)
        result["archive_s"] = time.monotonic() - t0
        if out.returncode != 0:
            raise BenchError(f"archive failed: {out.stderr[-2000:]}")
        result["archive_out"] = out.stdout.strip()
        result["archive_bytes"] = du(archive_dir)
        print(f"bench: {out.stdout.strip()} in {result['archive_s']:.0f} s", file=sys.stderr)
        result["sizes_after"] = sizes(arch.url)
        pg_exec(arch.url, "VACUUM ANALYZE")
        result["sizes_after_vacuum"] = sizes(arch.url)
        pg_exec(arch.url, "VACUUM FULL ANALYZE")
        result["sizes_after_vacuum_full"] = sizes(arch.url)
        pg_exec(db.url, "VACUUM ANALYZE")  # the same housekeeping for "before": no autovacuum mid-phase
        if not args.check:
            if args.lock:  # the preparation above runs unlocked; the measurement waits for its turn
                print(f"bench: waiting for {args.lock} ...", file=sys.stderr)
                lock = open(args.lock, "a")  # noqa: SIM115 - held until the process exits
                fcntl.flock(lock, fcntl.LOCK_EX)
                result["measured_from"] = f"{dt.datetime.now(dt.UTC):%H:%M:%S} UTC"
                print("bench: got the lock", file=sys.stderr)
            wrk = Wrk("wrk", args.threads, args.connections, 10, False, outdir / "wrk.log", cleanup)
            floor = start_floor(outdir, cleanup)
            servers = {}
            for label, e in (("before", env), ("after", arch_env)):
                prefix = RedisPrefix(args.redis_url)
                cleanup.push(f"redis keys {prefix.prefix}*", prefix.delete)
                servers[label], result[label] = prepare(args, wrk, floor, {**e, "VIEWER_REDIS_PREFIX": prefix.prefix},
                                                        outdir / f"{label}.server.log", label, cleanup, hot,
                                                        learners)
            for rep in range(args.repeats):
                for label in (("before", "after") if rep % 2 == 0 else ("after", "before")):
                    one_round(args, wrk, floor, servers[label], result[label], label, rep, hot)
            for label, server in servers.items():
                server.stop()
                medians(result[label])
    except BenchError as e:
        print(f"bench: FAILED: {e}", file=sys.stderr)
        result["error"] = str(e)
    finally:
        cleanup.run()
    text = report(result, started)
    print(text)
    (outdir.parent / f"archive-{started:%Y%m%dT%H%M%S}.md").write_text(text)
    (outdir.parent / f"archive-{started:%Y%m%dT%H%M%S}.json").write_text(json.dumps(result, indent=1))
    return 1 if "error" in result else 0


def report(r: dict, started) -> str:
    mb = lambda b: f"{b / 1e6:.1f} MB"  # noqa: E731
    lines = [f"# Archive benchmark, {started:%Y-%m-%d %H:%M} UTC", "",
             f"{r['rows']} consumption rows ({r['learners']} learners x {r['contents']} contents), "
             f"{r['hot_learners']} learners in progress; PostgreSQL + Redis, 1 worker."]
    if "error" in r:
        lines += ["", f"FAILED: {r['error']}"]
    if "sizes_after" in r:
        lines += ["", "| table | before | after archive | after VACUUM | after VACUUM FULL |", "|---|---|---|---|---|"]
        for t in TABLES:
            cells = [f"{r[k][t]['rows']} rows, {mb(r[k][t]['bytes'])}" for k in
                     ("sizes_before", "sizes_after", "sizes_after_vacuum", "sizes_after_vacuum_full")]
            lines.append(f"| {t} | " + " | ".join(cells) + " |")
        moved = r["sizes_before"]["user_content_consumption"]["rows"] - r["sizes_after"]["user_content_consumption"]["rows"]
        lines += ["", f"Archive run: {r['archive_out']}; {r['archive_s']:.0f} s wall ({moved / r['archive_s']:.0f} "
                      f"consumption rows/s); Parquet files {mb(r['archive_bytes'])}."]
    if "before" in r and "after" in r:
        lines += ["", "| phase | before req/s (x floor) | after req/s (x floor) | before p99 ms | after p99 ms |",
                  "|---|---|---|---|---|"]
        for p in PHASES:
            b, a = r["before"]["median"][p], r["after"]["median"][p]
            fb, fa = r["before"]["median"]["floor"]["rps"], r["after"]["median"]["floor"]["rps"]
            lines.append(f"| {p} | {b['rps']:.0f} ({b['rps'] / fb:.2f}) | {a['rps']:.0f} ({a['rps'] / fa:.2f}) | "
                         f"{b['p99']:.1f} | {a['p99']:.1f} |")
        lines += ["", f"Cold view/read (cache miss, sequential, median): hot learners "
                      f"{r['before']['cold_hot_ms']:.2f} ms before, {r['after']['cold_hot_ms']:.2f} ms after; "
                      f"archived learners {r['after']['cold_archived_ms']:.2f} ms after.",
                  "", "Every repeat (req/s): " + "; ".join(
                      f"{k} {p}: " + ", ".join(f"{x['rps']:.0f}" for x in r[k]["runs"][p])
                      for k in ("before", "after") for p in PHASES)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())

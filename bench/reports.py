#!/usr/bin/env python3
"""Benchmark the course-wide reports on a context of 100,000 enrolments (docs/reports.md).

    .venv/bin/python bench/reports.py --quick          # 10,000 enrolments, fewer repeats (~1 min)
    .venv/bin/python bench/reports.py                  # the recorded run: 100,000 enrolments

Per stack (sqlite: a SQLite file in a temp dir; postgres: a fresh database `viewer_bench_r_<hex>`
and a fresh Redis key prefix), `viewer-service serve` runs as a subprocess and this process is
the client (HTTP, one keep-alive connection, requests one after another):

1. Seed (SQL, in bulk): the target context's N enrolments (20 % not started, 50 % in progress,
   30 % completed over 60 days), 4 unit aggregates each, and consumption rows (a video and two
   scored quizzes per started learner); plus N/2 enrolments of another context in the same
   tables. The collection and the contexts are registered through the API.
2. Measure, interleaved per round, with the medians reported: the floor (`GET /health`), stats,
   stats of one collection, the first roster page (100), a page in the middle (by cursor), a
   filtered page (status=2), and the whole roster as CSV (with the server's resident memory
   sampled while it streams).
3. Freshness: learners enrol and complete the 24-leaf collection over HTTP; the time from the last
   view end's acknowledgement until a stats call shows the completion.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from harness import BenchError, Cleanup, free_port, med, pg_exec, plain_pg_url, redis_delete_prefix

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).with_name("viewer-service")
COL, CTX, OTHER = "rep_col", "rep_batch", "rep_other"
UNITS = [f"unit_{u}" for u in range(4)]
LEAVES = {u: [f"{u}_v{i}" for i in range(5)] + [f"{u}_quiz"] for u in UNITS}
QUIZZES = [LEAVES[UNITS[0]][-1], LEAVES[UNITS[1]][-1]]
DAY = 86_400_000


def collection_doc() -> dict:
    return {"name": "Reports bench course", "leafNodes": [c for u in UNITS for c in LEAVES[u]],
            "children": [{"identifier": u, "name": u, "mimeType": "application/vnd.ekstep.content-collection",
                          "children": [{"identifier": c, "name": c, "mimeType": "video/mp4"} for c in LEAVES[u]]}
                         for u in UNITS]}


async def seed(url: str, n: int, rng: random.Random) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from viewer_service.adapters.db.tables import enrolment, user_activity_agg, user_content_consumption

    engine = create_async_engine(url)
    now = int(time.time() * 1000)
    chunk = 5000

    def rows_for(context: str, count: int):
        en, agg, ucc = [], [], []
        for i in range(count):
            user = f"{context}-u{i:07d}"
            r = rng.random()
            status = 0 if r < 0.2 else 1 if r < 0.7 else 2
            progress = 0 if status == 0 else 100 if status == 2 else rng.randint(1, 99)
            enrolled = now - rng.randint(1, 60) * DAY - rng.randint(0, DAY)
            completed = min(now, enrolled + rng.randint(1, 30 * DAY)) if status == 2 else None
            en.append(dict(user_id=user, collection_id=COL, context_id=context, enrolled_date=enrolled, active=True,
                           issued_certificates=[], status=status, progress=progress, completed_on=completed,
                           updated_at=now, moved_to=None))
            for u in UNITS:
                up = progress if status != 1 else rng.randint(0, 100)
                agg.append(dict(user_id=user, collection_id=COL, context_id=context, activity_type="Unit",
                                activity_id=u, aggregates={"completedCount": 0, "leafNodesCount": 6},
                                content_status={}, agg_last_updated={}, progress=up, status=2 if up == 100 else 1,
                                completed_on=None, updated_at=now))
            if status:
                seen = enrolled + rng.randint(0, DAY)
                for cid in (LEAVES[UNITS[0]][0], *QUIZZES):
                    scored = cid in QUIZZES
                    ucc.append(dict(user_id=user, collection_id=COL, context_id=context, content_id=cid,
                                    status=2 if status == 2 else 1, progress=100, progress_details=None,
                                    progress_details_ts=None, time_spent=60.0, view_count=1,
                                    first_access_time=seen, last_access_time=seen + 1000,
                                    last_completed_time=seen + 1000 if status == 2 else None,
                                    last_updated_time=seen + 1000, version=1,
                                    best_score=float(rng.randint(0, 10)) if scored else None,
                                    best_max_score=10.0 if scored else None,
                                    best_attempt_id="a1" if scored else None,
                                    attempts=rng.randint(1, 3) if scored else 0, carried_from=None))
            if len(en) >= chunk:
                yield en, agg, ucc
                en, agg, ucc = [], [], []
        if en:
            yield en, agg, ucc

    try:
        for context, count in ((CTX, n), (OTHER, n // 2)):
            for en, agg, ucc in rows_for(context, count):
                async with engine.begin() as conn:
                    await conn.execute(enrolment.insert(), en)
                    await conn.execute(user_activity_agg.insert(), agg)
                    if ucc:
                        await conn.execute(user_content_consumption.insert(), ucc)
        async with engine.connect() as conn:
            await conn.exec_driver_sql("ANALYZE")
    finally:
        await engine.dispose()


def rss_kb(pid: int) -> int:
    """Resident memory of the server and its children, in KiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def timed(c: httpx.Client, path: str, **params) -> float:
    t = time.perf_counter()
    r = c.get(path, params=params)
    dt = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise BenchError(f"{path}: {r.status_code} {r.text[:300]}")
    return dt


def csv_run(c: httpx.Client, pid: int) -> tuple[float, int, int, int]:
    """(ms, bytes, rows, peak RSS KiB during the stream)."""
    peak, stop = [rss_kb(pid)], threading.Event()

    def sample():
        while not stop.wait(0.1):
            peak.append(rss_kb(pid))

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t = time.perf_counter()
    size = lines = 0
    with c.stream("GET", f"/v1/report/context/{CTX}", params={"format": "csv"}) as r:
        if r.status_code != 200:
            raise BenchError(f"csv: {r.status_code}")
        for chunk in r.iter_bytes():
            size += len(chunk)
            lines += chunk.count(b"\n")
    dt = (time.perf_counter() - t) * 1000
    stop.set()
    th.join()
    return dt, size, lines - 1, max(peak)


def freshness(c: httpx.Client, learners: int) -> list[float]:
    lags = []
    leaves = [x for u in UNITS for x in LEAVES[u]]
    done = c.get(f"/v1/report/context/{CTX}/stats").json()["result"]["byStatus"]["2"]
    for i in range(learners):
        user = f"fresh-{secrets.token_hex(4)}"
        scope = {"userId": user, "collectionId": COL, "contextId": CTX}
        c.post("/v1/enrol", json={"request": scope}).raise_for_status()
        for cid in leaves:
            for op in ("start", "end"):
                c.post(f"/v1/view/{op}", json={"request": {**scope, "contentId": cid}}).raise_for_status()
        acked = time.perf_counter()
        end = acked + 30
        while True:
            now_done = c.get(f"/v1/report/context/{CTX}/stats").json()["result"]["byStatus"]["2"]
            if now_done > done:
                lags.append((time.perf_counter() - acked) * 1000)
                done = now_done
                break
            if time.perf_counter() > end:
                raise BenchError("a completion did not show in the stats within 30 s")
    return lags


def run_stack(stack: str, args, cleanup: Cleanup) -> dict:
    from viewer_service.adapters.db.migrate import upgrade
    from viewer_service.domain.reports import encode_cursor

    tmp = Path(tempfile.mkdtemp(prefix="viewer-bench-reports-"))
    cleanup.push("temp dir", lambda: subprocess.run(["rm", "-rf", str(tmp)], check=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(VIEWER_EVENT_SINK="none", VIEWER_WORKER_IN_SERVE="true")
    if stack == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp}/viewer.db"
    else:
        name = f"viewer_bench_r_{secrets.token_hex(4)}"
        admin = args.pg_url
        pg_exec(admin, f'CREATE DATABASE "{name}"')
        cleanup.push("database", lambda: pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        url = plain_pg_url(admin).rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
        prefix = f"bench-r-{secrets.token_hex(4)}:"
        env.update(VIEWER_REDIS_URL=args.redis_url, VIEWER_REDIS_PREFIX=prefix)
        cleanup.push("redis keys", lambda: redis_delete_prefix(args.redis_url, prefix))
    env["VIEWER_DATABASE_URL"] = url
    upgrade(url)
    t = time.perf_counter()
    asyncio.run(seed(url, args.enrolments, random.Random(7)))
    if stack == "postgres":
        pg_exec(url, "VACUUM ANALYZE")  # the visibility map: index-only scans, as autovacuum would leave it
    seed_s = time.perf_counter() - t
    port = free_port()
    log = open(tmp / "serve.log", "wb")
    proc = subprocess.Popen([str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=tmp, env=env,
                            stdout=log, stderr=subprocess.STDOUT)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()

    cleanup.push("server", stop)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=120) as c:
        end = time.monotonic() + 60
        while True:
            try:
                if c.get("/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > end or proc.poll() is not None:
                raise BenchError(f"serve did not start: {(tmp / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.1)
        c.put(f"/v1/collection/{COL}", json={"request": collection_doc()}).raise_for_status()
        for ctx in (CTX, OTHER):
            c.put(f"/v1/context/{ctx}", json={"request": {"type": "batch", "collectionIds": [COL]}}).raise_for_status()
        middle = encode_cursor(COL, f"{CTX}-u{args.enrolments // 2:07d}")
        cases = {
            "floor (GET /health)": lambda: timed(c, "/health"),
            "stats": lambda: timed(c, f"/v1/report/context/{CTX}/stats"),
            "stats, one collection, passPercent=60": lambda: timed(c, f"/v1/report/context/{CTX}/stats",
                                                                   collectionId=COL, passPercent=60),
            "roster first page (100)": lambda: timed(c, f"/v1/report/context/{CTX}"),
            "roster middle page (cursor)": lambda: timed(c, f"/v1/report/context/{CTX}", cursor=middle),
            "roster page, status=2": lambda: timed(c, f"/v1/report/context/{CTX}", status=2),
        }
        for fn in cases.values():  # warm-up, not recorded
            fn()
        times = {k: [] for k in cases}
        for _ in range(args.repeats):
            for k, fn in cases.items():
                times[k].append(fn())
        rss_before = rss_kb(proc.pid)
        csv = [csv_run(c, proc.pid) for _ in range(args.csv_repeats)]
        lags = freshness(c, args.fresh)
    return {"stack": stack, "seed_s": seed_s, "times": times, "csv": csv, "rss_before": rss_before, "lags": lags}


def report(results: list[dict], args) -> str:
    out = [f"enrolments in the context: {args.enrolments:,} (+{args.enrolments // 2:,} in another); "
           f"repeats: {args.repeats}; CSV repeats: {args.csv_repeats}; freshness learners: {args.fresh}", ""]
    out.append("| stack | request | median ms | min ms | max ms | median / floor |")
    out.append("|---|---|---:|---:|---:|---:|")
    for r in results:
        floor = med(r["times"]["floor (GET /health)"])
        for k, xs in r["times"].items():
            out.append(f"| {r['stack']} | {k} | {med(xs):.1f} | {min(xs):.1f} | {max(xs):.1f} | {med(xs) / floor:.0f} |")
    out += ["", "| stack | CSV of the whole roster: median s | rows | MB | server RSS before / peak while streaming MiB |",
            "|---|---:|---:|---:|---|"]
    for r in results:
        ms = med([x[0] for x in r["csv"]])
        rows, size, peak = r["csv"][0][2], r["csv"][0][1], max(x[3] for x in r["csv"])
        out.append(f"| {r['stack']} | {ms / 1000:.2f} | {rows:,} | {size / 1e6:.1f} | "
                   f"{r['rss_before'] / 1024:.0f} / {peak / 1024:.0f} |")
    out += ["", "| stack | freshness: last view end acknowledged -> stats show the completion, median / max ms |",
            "|---|---|"]
    for r in results:
        out.append(f"| {r['stack']} | {med(r['lags']):.0f} / {max(r['lags']):.0f} (n={len(r['lags'])}) |")
    out += ["", "seed: " + ", ".join(f"{r['stack']} {r['seed_s']:.0f} s" for r in results)]
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stacks", default="sqlite,postgres")
    ap.add_argument("--enrolments", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--csv-repeats", type=int, default=3)
    ap.add_argument("--fresh", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="10,000 enrolments, 5 repeats, 1 CSV, 2 freshness")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    if args.quick:
        args.enrolments, args.repeats, args.csv_repeats, args.fresh = 10_000, 5, 1, 2
    cleanup = Cleanup()
    try:
        results = [run_stack(s.strip(), args, cleanup) for s in args.stacks.split(",") if s.strip()]
        text = report(results, args)
        print(text)
        results_dir = ROOT / "bench" / "results"
        results_dir.mkdir(exist_ok=True)
        (results_dir / f"reports-{time.strftime('%Y%m%d-%H%M%S')}.md").write_text(text + "\n")
        return 0
    finally:
        cleanup.run()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Flat at scale: write and read latency and the worker's recompute rate at 10^4 .. 10^7 rows.

    flock /work/wt/bench.lock .venv/bin/python bench/scale.py                      # 1e4,1e5,1e6,1e7, both stacks
    .venv/bin/python bench/scale.py --sizes 1000 -d 1 --repeats 1                  # smoke run (what the test does)

Per stack (postgres: a fresh database + Redis under a fresh key prefix; sqlite: a SQLite file in a
temp dir + the in-process cache) and per size N (consumption rows):

1. Bulk load, not through the API: N / 200 learners x 10 collections x 20 contents (~200 contents
   a learner), one context; an enrolment per (learner, collection); a Course + 2 Unit aggregate
   rows per scope (except the worker's sample scopes, which the worker computes first); the 10
   collections registered in the catalog. PostgreSQL: INSERT ... SELECT from generate_series in
   the server, then VACUUM (ANALYZE); SQLite: executemany in transactions of 100,000 rows.
2. `viewer-service serve` (fresh: nothing cached). Cold reads: `view/read` of up to `--cold`
   distinct scopes spread over the table, each read once (every one a cache miss, so a database
   read). Then `--set` scopes spread over the table are read once (cached), and `--repeats` rounds
   of writes (`view/update` of a random row of the whole table) and cached reads (a random scope of
   that set), `-d` seconds each, wrk in its own process (bench/scale.lua).
3. Server stopped; the aggregation worker (in this process, `AggregationWorker.run_once`) recomputes
   500 scopes spread over the table, `--worker-passes` times: scopes per second.
4. Table and index sizes, server RSS, Redis used_memory and MEMORY USAGE of a cached scope,
   PostgreSQL's shared_buffers and the plans (EXPLAIN ANALYZE) of the read and write statements.
5. Everything removed (database, keys, temp dir), also on Ctrl-C or failure.

Report: stdout and bench/results/scale-<timestamp>.md (+ .json). Exit 1 when something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import BenchError, Cleanup, PgDatabase, RedisPrefix, _sigterm, med, pg_exec, plain_pg_url  # noqa: E402
from procfs import machine_busy_sample  # noqa: E402
from server import Server, tail  # noqa: E402
from wrk import Wrk  # noqa: E402

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
COLS, PER, UNITS = 10, 20, 2  # collections per learner, contents per collection, units per collection
ROWS_PER_LEARNER = COLS * PER
CTX = "scale_batch"
T0 = 1_763_000_000_000  # epoch ms of the loaded rows
WORKER_SCOPES = 500
TABLES = ("user_content_consumption", "enrolment", "user_activity_agg", "scope_dirty")


def say(msg: str) -> None:
    print(f"bench-scale: {msg}", file=sys.stderr, flush=True)


def col_id(c: int) -> str:
    return f"scale_c{c}"


def leaf(c: int, k: int) -> str:
    return f"do_s{c}_{k}"


def collection_doc(c: int) -> dict:
    per_unit = PER // UNITS
    return {"name": f"scale {c}", "children": [
        {"identifier": f"scale_c{c}_unit{u}", "mimeType": "application/vnd.ekstep.content-collection",
         "children": [{"identifier": leaf(c, k), "mimeType": "application/pdf"}
                      for k in range(u * per_unit + 1, (u + 1) * per_unit + 1)]}
        for u in range(UNITS)]}


def worker_sample(learners: int) -> list[tuple[int, int]]:
    """(learner, collection) of the worker's scopes: spread over the learners, all collections."""
    m = min(WORKER_SCOPES, learners * COLS)
    return [((i * learners) // m, 1 + i % COLS) for i in range(m)]


# Row values as SQL over u (learner), c (collection), k (content), shared by both loaders: the first
# `done` contents of a scope completed, the rest in progress. done = (7u + 3c) mod 21: 0..20.
DONE = "((u * 7 + c * 3) % 21)"
UCC_COLS = ("user_id, collection_id, context_id, content_id, status, progress, progress_details, "
            "progress_details_ts, time_spent, view_count, first_access_time, last_access_time, "
            "last_completed_time, last_updated_time, version, attempts")


def ucc_select(json_fn: str) -> str:
    return f"""
    SELECT 'scale_u' || u, 'scale_c' || c, '{CTX}', 'do_s' || c || '_' || k,
           CASE WHEN k <= {DONE} THEN 2 ELSE 1 END,
           CASE WHEN k <= {DONE} THEN 100 ELSE (k * 37 + u) % 100 END,
           {json_fn}('position', (u + k) % 3600), {T0}, 60.0, 1, {T0 - 600_000}, {T0},
           CASE WHEN k <= {DONE} THEN {T0} END, {T0}, {T0 * 1000}, 0"""


ENROL_COLS = ("user_id, collection_id, context_id, enrolled_date, active, issued_certificates, status, progress, "
              "completed_on, updated_at")
AGG_COLS = ("user_id, collection_id, context_id, activity_type, activity_id, aggregates, content_status, "
            "agg_last_updated, progress, status, completed_on, updated_at")


PG_EMPTY_LIST, SQLITE_EMPTY_LIST = "'[]'::jsonb", "'[]'"


def enrol_select(empty_list: str) -> str:
    return (f"SELECT 'scale_u' || u, 'scale_c' || c, '{CTX}', {T0 - 86_400_000}, true, {empty_list}, "
            f"CASE WHEN {DONE} > 0 THEN 1 ELSE 0 END, ({DONE} * 100) / 20, NULL, {T0}")


def agg_select(json_fn: str) -> str:
    # One Course row and UNITS Unit rows per scope, shaped like the worker's (values approximate).
    return f"""
    SELECT 'scale_u' || u, 'scale_c' || c, '{CTX}', CASE WHEN a = 0 THEN 'Course' ELSE 'Unit' END,
           CASE WHEN a = 0 THEN 'scale_c' || c ELSE 'scale_c' || c || '_unit' || (a - 1) END,
           {json_fn}('completedCount', {DONE}, 'leafNodesCount', {PER}),
           {json_fn}(), {json_fn}('completedCount', {T0}),
           ({DONE} * 100) / 20, CASE WHEN {DONE} = {PER} THEN 2 ELSE 1 END,
           CASE WHEN {DONE} = {PER} THEN {T0} END, {T0}"""


def run_async(coro):
    """asyncio.run, with SIGINT/SIGTERM cancelling the coroutine (so its `finally` blocks close their
    connections) and then raising KeyboardInterrupt: an interrupt raised in the middle of a driver
    call can leave the engine's dispose waiting forever, and the cleanup never running."""

    async def main():
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        sigs = (signal.SIGINT, signal.SIGTERM) if threading.current_thread() is threading.main_thread() else ()
        for sig in sigs:
            loop.add_signal_handler(sig, task.cancel)
        try:
            return await task
        except asyncio.CancelledError:
            raise KeyboardInterrupt("signal") from None
        finally:
            for sig in sigs:
                loop.remove_signal_handler(sig)
            if sigs:  # back to raising KeyboardInterrupt outside the loop
                signal.signal(signal.SIGINT, signal.default_int_handler)
                signal.signal(signal.SIGTERM, _sigterm)

    return asyncio.run(main())


# --------------------------------------------------------------------------- CPU of our own PostgreSQL backends

def proc_cpu_s(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    f = raw[raw.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


class PgBackends:
    """CPU seconds of the PostgreSQL backends connected to one database: the server is shared with
    other jobs, so only our database's backends count. A backend that ends in between is missed."""

    def __init__(self, admin_url: str | None, dbname: str | None):
        self.admin_url, self.dbname = admin_url, dbname

    def snapshot(self) -> dict[int, float]:
        if not self.dbname:
            return {}
        import asyncpg

        async def pids():
            conn = await asyncpg.connect(plain_pg_url(self.admin_url))
            try:
                return [r[0] for r in await conn.fetch(
                    "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", self.dbname)]
            finally:
                await conn.close()

        return {p: proc_cpu_s(p) for p in run_async(pids())}

    def since(self, before: dict[int, float]) -> float:
        after = self.snapshot()
        return sum(cpu - before.get(p, 0.0) for p, cpu in after.items())


# --------------------------------------------------------------------------- loaders

async def _pg_load(url: str, learners: int, chunk_rows: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(plain_pg_url(url))
    try:
        step = max(1, chunk_rows // ROWS_PER_LEARNER)
        for lo in range(0, learners, step):
            hi = min(learners, lo + step) - 1
            async with conn.transaction():
                await conn.execute(
                    f"INSERT INTO user_content_consumption ({UCC_COLS}) {ucc_select('jsonb_build_object')} "
                    f"FROM generate_series({lo}, {hi}) u, generate_series(1, {COLS}) c, generate_series(1, {PER}) k")
                await conn.execute(
                    f"INSERT INTO enrolment ({ENROL_COLS}) {enrol_select(PG_EMPTY_LIST)} FROM generate_series({lo}, {hi}) u, "
                    f"generate_series(1, {COLS}) c")
                await conn.execute(
                    f"INSERT INTO user_activity_agg ({AGG_COLS}) {agg_select('jsonb_build_object')} FROM generate_series({lo}, {hi}) u, "
                    f"generate_series(1, {COLS}) c, generate_series(0, {UNITS}) a")
            say(f"  loaded learners {hi + 1:,}/{learners:,} ({(hi + 1) * ROWS_PER_LEARNER:,} rows)")
        users = [f"scale_u{u}" for u, _ in worker_sample(learners)]
        cols = [col_id(c) for _, c in worker_sample(learners)]
        await conn.execute("DELETE FROM user_activity_agg a USING unnest($1::text[], $2::text[]) s(u, c) "
                           "WHERE a.user_id = s.u AND a.collection_id = s.c", users, cols)
        say("  VACUUM (ANALYZE)")
        await conn.execute("VACUUM (ANALYZE) user_content_consumption, enrolment, user_activity_agg, scope_dirty")
    finally:
        await conn.close()


def sqlite_load(path: str, learners: int, chunk_rows: int) -> None:
    # The same rows as the PostgreSQL loader, computed by SQLite from a recursive CTE per chunk.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=DELETE")  # a bulk load: no WAL copy of every page
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")
        step = max(1, chunk_rows // ROWS_PER_LEARNER)

        def series(name, lo, hi):
            return (f"{name}(v) AS (SELECT {lo} UNION ALL SELECT v + 1 FROM {name} WHERE v < {hi})")

        for lo in range(0, learners, step):
            hi = min(learners, lo + step) - 1
            with_ = ("WITH RECURSIVE " + ", ".join([series("u", lo, hi), series("c", 1, COLS),
                                                   series("k", 1, PER), series("a", 0, UNITS)]) + " ")
            db.execute("BEGIN")
            db.execute(f"{with_} INSERT INTO user_content_consumption ({UCC_COLS}) {ucc_select('json_object')} "
                       "FROM (SELECT u.v AS u, c.v AS c, k.v AS k FROM u, c, k)")
            db.execute(f"{with_} INSERT INTO enrolment ({ENROL_COLS}) {enrol_select(SQLITE_EMPTY_LIST)} "
                       "FROM (SELECT u.v AS u, c.v AS c FROM u, c)")
            db.execute(f"{with_} INSERT INTO user_activity_agg ({AGG_COLS}) {agg_select('json_object')} "
                       "FROM (SELECT u.v AS u, c.v AS c, a.v AS a FROM u, c, a)")
            db.execute("COMMIT")
            say(f"  loaded learners {hi + 1:,}/{learners:,} ({(hi + 1) * ROWS_PER_LEARNER:,} rows)")
        db.executemany("DELETE FROM user_activity_agg WHERE user_id = ? AND collection_id = ?",
                       [(f"scale_u{u}", col_id(c)) for u, c in worker_sample(learners)])
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()


async def register_collections(url: str) -> None:
    from viewer_service.adapters.db.engine import make_engine
    from viewer_service.services.catalog import Catalog

    engine = make_engine(url)
    catalog = Catalog(engine)
    try:
        for c in range(1, COLS + 1):
            got = await catalog.put(col_id(c), collection_doc(c))
            assert len(got.required_leaf_nodes) == PER and len(got.units) == UNITS, got.units
    finally:
        await catalog.close()
        await engine.dispose()


# --------------------------------------------------------------------------- worker

async def worker_rate(url: str, learners: int, passes: int, pg: PgBackends) -> list[dict]:
    import sqlalchemy as sa

    from viewer_service.adapters.db.engine import make_engine
    from viewer_service.adapters.db.tables import scope_dirty
    from viewer_service.services.catalog import Catalog
    from viewer_service.services.aggregation import AggregationWorker

    engine = make_engine(url)
    catalog = Catalog(engine)
    marks = [{"user_id": f"scale_u{u}", "collection_id": col_id(c), "context_id": CTX, "seq": 1, "marked_at": 0,
              "due_at": 0, "claimed_by": None, "attempts": 0} for u, c in worker_sample(learners)]
    out = []
    try:
        for p in range(passes):
            async with engine.begin() as conn:
                await conn.execute(sa.delete(scope_dirty))
                await conn.execute(sa.insert(scope_dirty), marks)
            if engine.dialect.name == "postgresql" and p:
                async with engine.connect() as conn:  # what autovacuum does to tables this busy (untimed)
                    await conn.execution_options(isolation_level="AUTOCOMMIT")
                    await conn.exec_driver_sql("VACUUM (ANALYZE) scope_dirty, user_activity_agg, enrolment, event_outbox")
            w = AggregationWorker(engine, catalog, batch=100)
            g0 = await asyncio.to_thread(pg.snapshot)
            t0, c0 = time.perf_counter(), time.process_time()
            while await w.run_once():
                pass
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            pg_cpu = await asyncio.to_thread(pg.since, g0)
            async with engine.connect() as conn:
                left = (await conn.execute(sa.select(sa.func.count()).select_from(scope_dirty))).scalar_one()
            out.append({"scopes": w.recomputed, "wall_s": wall, "cpu_s": cpu, "pg_cpu_s": pg_cpu,
                        "rate": w.recomputed / wall, "left": left})
            say(f"  worker pass {p + 1}: {w.recomputed} scopes in {wall:.2f} s = {w.recomputed / wall:,.0f}/s, left {left}")
    finally:
        await catalog.close()
        await engine.dispose()
    return out


# --------------------------------------------------------------------------- sizes and plans

async def pg_sizes(url: str, learners: int) -> dict:
    import asyncpg

    conn = await asyncpg.connect(plain_pg_url(url))
    try:
        out = {"shared_buffers": await conn.fetchval("SHOW shared_buffers"), "tables": {}}
        for t in TABLES:
            out["tables"][t] = {
                "rows": await conn.fetchval(f"SELECT count(*) FROM {t}"),
                "heap": await conn.fetchval("SELECT pg_relation_size($1)", t),
                "toast": await conn.fetchval("SELECT pg_total_relation_size($1) - pg_relation_size($1) "
                                             "- pg_indexes_size($1)", t),
                "indexes": {r["indexrelid"]: r["size"] for r in await conn.fetch(
                    "SELECT indexrelid::regclass::text AS indexrelid, pg_relation_size(indexrelid) AS size "
                    "FROM pg_index WHERE indrelid = $1::regclass", t)},
            }
        out["database"] = await conn.fetchval("SELECT pg_database_size(current_database())")
        u = f"scale_u{learners // 2}"
        read = ("SELECT * FROM user_content_consumption WHERE user_id = $1 AND collection_id = $2 "
                "AND context_id = $3")
        # The write path's row lock (adapters/db/views.py _lock_pg): a join with unnest of key arrays.
        lock = ("SELECT ucc.* FROM user_content_consumption ucc JOIN unnest($1::text[], $2::text[], $3::text[], "
                "$4::text[]) AS wanted(user_id, collection_id, context_id, content_id) USING "
                "(user_id, collection_id, context_id, content_id) ORDER BY 1, 2, 3, 4 FOR UPDATE OF ucc")
        out["plans"] = {}
        for name, sql, args in (("read (load_scope)", read, (u, "scale_c3", CTX)),
                                ("write (lock_rows)", lock, ([u], ["scale_c3"], [CTX], ["do_s3_7"]))):
            async with conn.transaction():
                rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) " + sql, *args)
            out["plans"][name] = [r[0] for r in rows]
        return out
    finally:
        await conn.close()


def sqlite_sizes(path: str) -> dict:
    db = sqlite3.connect(path)
    try:
        out = {"file": os.path.getsize(path), "tables": {}}
        try:
            per = dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
        except sqlite3.Error:  # dbstat not compiled in
            per = {}
        for t in TABLES:
            idx = [r[1] for r in db.execute(f"PRAGMA index_list({t})")]
            out["tables"][t] = {"rows": db.execute(f"SELECT count(*) FROM {t}").fetchone()[0],
                                "heap": per.get(t), "indexes": {i: per.get(i) for i in idx}}
        u = "scale_u0"
        out["plans"] = {
            "read (load_scope)": [r[-1] for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM user_content_consumption WHERE user_id = ? AND collection_id = ? "
                "AND context_id = ?", (u, "scale_c3", CTX))],
            "write (lock_rows)": [r[-1] for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM user_content_consumption WHERE user_id IN (?) AND "
                "(user_id, collection_id, context_id, content_id) IN (VALUES (?, ?, ?, ?))",
                (u, u, "scale_c3", CTX, "do_s3_7"))],
        }
        return out
    finally:
        db.close()


def redis_memory(url: str, prefix: str, learners: int, set_size: int) -> dict:
    import redis

    from viewer_service.adapters.cache.redis import scope_key
    from viewer_service.domain.scope import Scope

    r = redis.Redis.from_url(url)
    try:
        # Scope 0 (learner 0, collection 1) is the first of the cached set (scale.lua, offset 0).
        key = scope_key(prefix, Scope("scale_u0", col_id(1), CTX))
        return {"used_memory": r.info("memory")["used_memory"], "scope_key": key,
                "scope_bytes": r.memory_usage(key, samples=0), "scope_fields": r.hlen(key),
                "keys_under_prefix": sum(1 for _ in r.scan_iter(match=prefix + "*", count=1000))}
    finally:
        r.close()


# --------------------------------------------------------------------------- one (stack, size)

def lat(r, pg_cpu: float = 0.0) -> dict:
    d = r.data
    n = max(1, d["requests"])
    return {"requests": d["requests"], "rps": d["rps"], "server_us": r.server_cpu_s / n * 1e6,
            "pg_us": pg_cpu / n * 1e6, "redis_us": r.services_cpu_s.get("Redis", 0.0) / n * 1e6, "p50_ms": d["latency_us"]["p50"] / 1000,
            "p99_ms": d["latency_us"]["p99"] / 1000, "non2xx": int(d["errors"]["status"]),
            "timeouts": int(d["errors"]["timeout"])}


def run_one(args, stack: str, rows: int, outdir: Path, wrk_exe: str) -> dict:
    from viewer_service.adapters.db.migrate import upgrade

    learners = max(1, rows // ROWS_PER_LEARNER)
    res: dict = {"stack": stack, "rows": learners * ROWS_PER_LEARNER, "learners": learners, "phases": {}}
    cleanup = Cleanup()
    name = f"{stack}-{rows}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    try:
        tmp = tempfile.mkdtemp(prefix="viewer-scale-", dir=args.tmp_dir)
        cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
        env["VIEWER_EVENT_SINK"] = f"file:{tmp}/events.jsonl"
        env["VIEWER_DOWNLOAD_DIR"] = f"{tmp}/downloads"
        if stack == "sqlite":
            path = f"{tmp}/viewer.db"
            url = f"sqlite+aiosqlite:///{path}"
            upgrade(url)
        else:
            db = PgDatabase(args.pg_url)
            db.name = db.name.replace("viewer_bench_", "viewer_scale_")
            db.url = db.url.rsplit("/", 1)[0] + "/" + db.name
            db.create()
            res["database"] = db.name
            cleanup.push(f"database {db.name}", db.drop)
            url = db.url.replace("postgresql://", "postgresql+asyncpg://", 1)
            upgrade(url)
            prefix = RedisPrefix(args.redis_url)
            prefix.prefix = res["redis_prefix"] = prefix.prefix.replace("bench-", "scale-")
            cleanup.push(f"redis keys {prefix.prefix}*", prefix.delete)
            env.update(VIEWER_REDIS_URL=args.redis_url, VIEWER_REDIS_PREFIX=prefix.prefix)
        env["VIEWER_DATABASE_URL"] = url
        say(f"[{name}] loading {res['rows']:,} rows ({learners:,} learners x {COLS} collections x {PER} contents)")
        t0 = time.perf_counter()
        run_async(register_collections(url))
        if stack == "sqlite":
            sqlite_load(path, learners, args.chunk_rows)
        else:
            run_async(_pg_load(url, learners, args.chunk_rows))
        res["load_s"] = time.perf_counter() - t0
        say(f"[{name}] loaded in {res['load_s']:.1f} s")

        res["idle_cores_busy"] = machine_busy_sample(1.0)
        server = Server(env, 1, False, outdir / f"{name}.server.log")
        cleanup.push("server", server.stop)
        server.start(args.startup_timeout)
        res["rss_start_kb"] = server.memory()["total_kb"]
        wrk = Wrk(wrk_exe, 1, args.connections, 10, False, outdir / f"{name}.wrk.log", cleanup)
        common = [f"learners={learners}", f"cols={COLS}", f"per={PER}", "threads=1"]
        # Cold: distinct scopes, each read once, on a fresh cache. Offset 1 keeps them apart from the
        # cached set (offset 0) wherever the table has more scopes than both lists.
        pg = PgBackends(args.pg_url if stack == "postgres" else None, db.name if stack == "postgres" else None)
        # Warm-up of the read path (pool connections, prepared statements) on learners without rows.
        wrk.run("scale", server, args.cold_limit, common + ["mode=list", "set=300", "absent=1"],
                seed_mode=True, limit_s=args.cold_limit + 60)
        g0 = pg.snapshot()
        r = wrk.run("scale", server, args.cold_limit, common + ["mode=list", f"set={args.cold}", "offset=1"],
                    seed_mode=True, limit_s=args.cold_limit + 60)
        res["phases"]["cold_reads"] = [lat(r, pg.since(g0))]
        r = wrk.run("scale", server, args.cold_limit, common + ["mode=list", f"set={args.set}", "offset=0"],
                    seed_mode=True, limit_s=args.cold_limit + 60)
        res["warm_reads"] = lat(r)
        say(f"[{name}] cold reads p50 {res['phases']['cold_reads'][0]['p50_ms']:.2f} ms over "
            f"{res['phases']['cold_reads'][0]['requests']} reads; cached set of {min(args.set, learners * COLS)} read")
        for phase in ("writes", "reads"):  # warm-up, not recorded
            wrk.run("scale", server, 1, common + [f"mode={phase}", f"set={args.set}", "seed=99"])
        for rep in range(args.repeats):
            for phase in ("writes", "reads"):
                if not server.alive():
                    raise BenchError(f"server died:\n{tail(server.log_path)}")
                g0 = pg.snapshot()
                r = wrk.run("scale", server, args.duration, common + [f"mode={phase}", f"set={args.set}",
                                                                      f"seed={rep + 1}"])
                res["phases"].setdefault(phase, []).append(lat(r, pg.since(g0)))
                say(f"[{name}] {phase} {rep + 1}: {r.rps:,.0f}/s p50 {r.lat_ms('p50'):.2f} ms p99 {r.lat_ms('p99'):.2f} ms")
        res["rss_end_kb"] = server.memory()["total_kb"]
        if stack == "postgres":
            res["redis"] = redis_memory(args.redis_url, prefix.prefix, learners, args.set)
        server.stop()
        say(f"[{name}] worker: {args.worker_passes} passes of {len(worker_sample(learners))} scopes")
        res["worker"] = run_async(worker_rate(url, learners, args.worker_passes, pg))
        res["sizes"] = sqlite_sizes(path) if stack == "sqlite" else run_async(pg_sizes(url, learners))
        bad = [p for p, xs in res["phases"].items() for x in xs if x["non2xx"] or x["timeouts"]]
        if bad:
            raise BenchError(f"non-2xx answers or timeouts in {bad}; see {outdir}")
    except Exception as e:  # noqa: BLE001 - report it, clean up, go on with the next size
        res["error"] = f"{type(e).__name__}: {e}"
        say(f"[{name}] FAILED: {res['error']}")
    finally:
        cleanup.run()
    return res


# --------------------------------------------------------------------------- report

def summary(res: dict) -> dict:
    s = {}
    for phase, xs in res.get("phases", {}).items():
        s[phase] = {k: med([x[k] for x in xs]) for k in ("rps", "p50_ms", "p99_ms", "server_us", "pg_us", "redis_us")}
    w = res.get("worker") or []
    s["worker_rate"] = med([x["rate"] for x in w])
    s["worker_ms"] = med([x["cpu_s"] / max(1, x["scopes"]) * 1000 for x in w])
    s["worker_pg_ms"] = med([x.get("pg_cpu_s", 0.0) / max(1, x["scopes"]) * 1000 for x in w])
    return s


def mb(b) -> str:
    return "n/a" if b is None else f"{b / 1048576:,.1f}"


def report(args, started, results: list[dict]) -> str:
    L = [f"# viewer-service at scale, {started:%Y-%m-%d %H:%M %Z}", "",
         f"`wrk -t1 -c{args.connections}`, {args.duration} s phases, {args.repeats} repeat(s) of writes → "
         f"cached reads (medians); cold reads: up to {args.cold:,} distinct scopes each read once on a fresh "
         f"cache; cached reads: {args.set:,} scopes spread over the table, read once before; worker: "
         f"{args.worker_passes} passes over up to {WORKER_SCOPES} scopes spread over the table (median). Rows: learners x {COLS} collections "
         f"x {PER} contents. Latencies in ms.", ""]
    for stack in args.stacks:
        rs = sorted((r for r in results if r["stack"] == stack), key=lambda r: r["rows"])
        if not rs:
            continue
        L += [f"## {'PostgreSQL + Redis' if stack == 'postgres' else 'SQLite (embedded, in-process cache)'}", "",
              "| rows | learners | load s | write p50 | write p99 | write req/s | cached read p50 | p99 | req/s "
              "| cold read p50 | p99 | reads | worker scopes/s | server RSS MB | ucc heap MB | ucc indexes MB | db MB |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rs:
            if r.get("error"):
                L.append(f"| {r['rows']:,} | FAILED: {r['error'][:200]} |")
                continue
            s = summary(r)
            sz = r["sizes"]
            u = sz["tables"]["user_content_consumption"]
            idx = sum(v or 0 for v in u["indexes"].values())
            dbsize = sz.get("database", sz.get("file"))
            L.append(f"| {r['rows']:,} | {r['learners']:,} | {r['load_s']:.0f} | {s['writes']['p50_ms']:.2f} | "
                     f"{s['writes']['p99_ms']:.2f} | {s['writes']['rps']:,.0f} | {s['reads']['p50_ms']:.2f} | "
                     f"{s['reads']['p99_ms']:.2f} | {s['reads']['rps']:,.0f} | {s['cold_reads']['p50_ms']:.2f} | "
                     f"{s['cold_reads']['p99_ms']:.2f} | {r['phases']['cold_reads'][0]['requests']:,} | "
                     f"{s['worker_rate']:,.0f} | {r['rss_end_kb'] / 1024:.0f} | {mb(u['heap'])} | {mb(idx)} | {mb(dbsize)} |")
        ok = [r for r in rs if not r.get("error")]
        L += ["", "CPU per request (µs; medians; PostgreSQL: only this run's database's backends; Redis: the whole "
              "shared server) and per recomputed scope (ms):", "",
              "| rows | write server | write PG | write Redis | cached read server | cached read Redis | cold read server "
              "| cold read PG | worker process ms/scope | worker PG ms/scope |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in ok:
            s = summary(r)
            w, rd, c = s["writes"], s["reads"], s["cold_reads"]
            L.append(f"| {r['rows']:,} | {w['server_us']:.0f} | {w['pg_us']:.0f} | {w['redis_us']:.0f} | "
                     f"{rd['server_us']:.0f} | {rd['redis_us']:.0f} | {c['server_us']:.0f} | {c['pg_us']:.0f} | "
                     f"{s['worker_ms']:.2f} | {s['worker_pg_ms']:.2f} |")
        if len(ok) >= 2:
            a, b = summary(ok[0]), summary(ok[-1])
            L += ["", f"{ok[-1]['rows']:,} vs {ok[0]['rows']:,} rows, same sitting: " + ", ".join(
                f"{k} p50 {b[k]['p50_ms'] / a[k]['p50_ms']:.2f}×" for k in ("writes", "reads", "cold_reads"))
                + f", worker rate {b['worker_rate'] / a['worker_rate']:.2f}×."]
        for r in ok:
            red = r.get("redis")
            if red:
                L.append(f"- {r['rows']:,} rows: Redis used_memory {red['used_memory'] / 1048576:.1f} MB (whole server), "
                         f"{red['keys_under_prefix']:,} keys under the run's prefix; one cached scope of "
                         f"{red['scope_fields']} fields (20 contents + the full-scope mark): {red['scope_bytes']} bytes.")
            if "shared_buffers" in r["sizes"]:
                L.append(f"- {r['rows']:,} rows: shared_buffers {r['sizes']['shared_buffers']}; sizes MB: " + "; ".join(
                    f"{t} {v['rows']:,} rows heap {mb(v['heap'])} toast {mb(v['toast'])} indexes "
                    + ", ".join(f"{i} {mb(s)}" for i, s in v["indexes"].items())
                    for t, v in r["sizes"]["tables"].items()))
        if ok:
            L += ["", f"Plans at {ok[-1]['rows']:,} rows:", "", "```"]
            for nm, plan in ok[-1]["sizes"]["plans"].items():
                L += [f"-- {nm}", *plan]
            L += ["```", ""]
    return "\n".join(L)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,10000000,100000,1000000",
                   help="consumption rows, comma list, run in this order (default: the two ends first, so "
                        "that 10^7 vs 10^4 is measured early in the sitting)")
    p.add_argument("--stacks", default="postgres,sqlite", help="comma list of postgres, sqlite")
    p.add_argument("-c", "--connections", type=int, default=16, help="wrk connections")
    p.add_argument("-d", "--duration", type=int, default=5, help="seconds per measured phase")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cold", type=int, default=2000, help="cold reads: distinct scopes read once")
    p.add_argument("--set", type=int, default=2000, help="cached reads: scopes spread over the table")
    p.add_argument("--cold-limit", type=int, default=120, help="seconds at most for a read-once list")
    p.add_argument("--worker-passes", type=int, default=2)
    p.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows per load transaction")
    p.add_argument("--startup-timeout", type=int, default=120)
    p.add_argument("--tmp-dir", default=None, help="where the SQLite file goes (default: the system's temp dir)")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"))
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args(argv)
    a.sizes = [int(float(x)) for x in a.sizes.split(",") if x.strip()]
    a.stacks = [s.strip() for s in a.stacks.split(",") if s.strip()]
    if set(a.stacks) - {"postgres", "sqlite"}:
        p.error("stacks: postgres, sqlite")
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    wrk_exe = shutil.which("wrk")
    if not wrk_exe:
        print("bench-scale: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    started = dt.datetime.now().astimezone()
    out = Path(args.out)
    stamp = "scale-" + started.strftime("%Y%m%d-%H%M%S")
    outdir = out / stamp
    outdir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    interrupted = False
    try:
        for size in args.sizes:  # sizes outer: both stacks of a size measured close together
            for stack in args.stacks:
                results.append(run_one(args, stack, size, outdir, wrk_exe))
                (out / f"{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted; cleaned up")
    text = report(args, started, results)
    (out / f"{stamp}.md").write_text(text)
    (out / f"{stamp}.json").write_text(json.dumps(results, indent=1, default=str))
    print(text)
    say(f"report {out / stamp}.md, raw {out / stamp}.json")
    return 1 if interrupted or any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())

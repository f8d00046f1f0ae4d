"""Part 1 of bench/worker.py, throughput: N learners' completed scopes of a 50-leaf collection
recomputed by `AggregationWorker.run_once()` until the queue is empty, against a floor that does the
same claims, reads and writes with constant values, interleaved in the same process."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time

from harness import Cleanup, Store, sayer
from procfs import CpuMeter

say = sayer("bench-worker")

COL = "bench_col50"  # 5 units x 10 leaves
CTX = "bench_batch"
UNITS, PER_UNIT = 5, 10
T_DONE = 1_763_000_000_000  # the seeded rows' completion time (epoch ms)


class CountingHandler(logging.Handler):
    """Counts WARNING+ records of viewer_service (the worker logs failed recomputes there)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        if record.name.startswith("viewer_service"):
            self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}"[:300])


LOG_COUNTER = CountingHandler()


def collection_doc() -> tuple[dict, list[str], list[str]]:
    units = [f"bench_unit{u}" for u in range(1, UNITS + 1)]
    leaves = [f"do_w{u}_{i}" for u in range(1, UNITS + 1) for i in range(1, PER_UNIT + 1)]
    children = [{"identifier": unit, "mimeType": "application/vnd.ekstep.content-collection",
                 "children": [{"identifier": leaf, "mimeType": "application/pdf"}
                              for leaf in leaves[k * PER_UNIT:(k + 1) * PER_UNIT]]}
                for k, unit in enumerate(units)]
    return {"name": "b", "leafNodes": leaves, "children": children}, units, leaves


async def seed(engine, n: int, leaves: list[str]) -> dict:
    import sqlalchemy as sa

    from viewer_service.adapters.db.tables import enrolment, scope_dirty, user_content_consumption as ucc
    from viewer_service.adapters.db.views import DATA_COLS
    from viewer_service.domain.views import ContentView, RowKey

    # A completed view; ContentView's defaults for any other field (the table's data columns are
    # ContentView's fields, in order: adapters/db/views.py asserts it).
    done = ContentView(RowKey("", COL, CTX, ""), status=2, progress=100, time_spent=60.0, view_count=1,
                       first_access_time=T_DONE - 60_000, last_access_time=T_DONE, last_completed_time=T_DONE,
                       last_updated_time=T_DONE, version=T_DONE * 1000)
    values = {name: getattr(done, name) for name in DATA_COLS}
    users = [f"bench_w{i:05d}" for i in range(n)]
    t0 = time.perf_counter()
    chunk = []
    async with engine.begin() as conn:
        for u in users:
            for leaf in leaves:
                chunk.append({"user_id": u, "collection_id": COL, "context_id": CTX, "content_id": leaf, **values})
            if len(chunk) >= 10_000:
                await conn.execute(sa.insert(ucc), chunk)
                chunk = []
        if chunk:
            await conn.execute(sa.insert(ucc), chunk)
        await conn.execute(sa.insert(enrolment), [
            {"user_id": u, "collection_id": COL, "context_id": CTX, "enrolled_date": T_DONE - 86_400_000,
             "active": True, "issued_certificates": [], "status": 0, "progress": 0, "completed_on": None,
             "updated_at": T_DONE - 86_400_000} for u in users])
        await conn.execute(sa.insert(scope_dirty), dirty_params(users))
    seconds = time.perf_counter() - t0
    if engine.dialect.name == "postgresql":
        # Fresh bulk load: vacuum and analyze what was loaded, as autovacuum would a little later
        # (else the first pass alone pays for setting the hint bits of 100,000 new rows). The
        # tables the worker fills stay as a fresh deployment has them (see vacuum()).
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM (ANALYZE) user_content_consumption, enrolment, scope_dirty")
    return {"users": users, "seconds": seconds, "rows": n * len(leaves)}


def dirty_params(users: list[str]) -> list[dict]:
    return [{"user_id": u, "collection_id": COL, "context_id": CTX, "seq": 1, "marked_at": 0, "due_at": 0,
             "claimed_by": None, "attempts": 0} for u in users]


async def mark_all_dirty(engine, users: list[str]) -> None:
    import sqlalchemy as sa

    from viewer_service.adapters.db.tables import scope_dirty

    async with engine.begin() as conn:
        await conn.execute(sa.delete(scope_dirty))
        await conn.execute(sa.insert(scope_dirty), dirty_params(users))


async def vacuum(engine) -> None:
    """PostgreSQL, between passes (untimed): what autovacuum does to tables this busy, so that every
    pass starts from the same state (this matters where autovacuum is off, as on the test server).
    Never before the first pass: an ANALYZE of the still empty aggregate table makes the planner
    pick sequential scans of it, which the worker's prepared statements then keep (see the README)."""
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.exec_driver_sql("VACUUM (ANALYZE) user_activity_agg, scope_dirty, enrolment, event_outbox")


async def count(engine, table, *where) -> int:
    import sqlalchemy as sa

    async with engine.connect() as conn:
        return (await conn.execute(sa.select(sa.func.count()).select_from(table).where(*where))).scalar_one()


async def worker_pass(engine, catalog) -> dict:
    from viewer_service.services.aggregation import AggregationWorker

    w = AggregationWorker(engine, catalog, batch=100)
    warn0 = len(LOG_COUNTER.records)
    rounds = 0
    with CpuMeter() as m:
        while await w.run_once():
            rounds += 1
    return {"kind": "worker", "scopes": w.recomputed, "deferred": w.deferred, "rounds": rounds, "wall": m.wall,
            "proc_cpu": m.proc, "pg_cpu": m.pg, "machine": m.machine,
            "warnings": len(LOG_COUNTER.records) - warn0}


async def floor_pass(engine, units: list[str], leaves: list[str]) -> dict:
    """Same claim rounds as the worker; per scope one transaction: read the 50 raw rows, replace
    the 6 aggregate rows, update the enrolment, delete the mark. Constant values, no logic."""
    import sqlalchemy as sa

    from viewer_service.adapters.db import dirty as repo
    from viewer_service.adapters.db.sql import where_scope
    from viewer_service.adapters.db.tables import enrolment as en, scope_dirty as d, user_activity_agg as agg
    from viewer_service.adapters.db.views import load_scope
    from viewer_service.clock import now_ms

    # The values the worker writes for a completed scope, precomputed once.
    course = {"collection_id": COL, "context_id": CTX, "activity_type": "Course", "activity_id": COL,
              "aggregates": {"completedCount": len(leaves), "leafNodesCount": len(leaves)},
              "content_status": {leaf: 2 for leaf in leaves}, "agg_last_updated": {"completedCount": T_DONE},
              "progress": 100, "status": 2, "completed_on": T_DONE, "updated_at": T_DONE}
    unit_rows = [{**course, "activity_type": "Unit", "activity_id": u,
                  "aggregates": {"completedCount": PER_UNIT, "leafNodesCount": PER_UNIT}, "content_status": {}}
                 for u in units]
    templates = [course, *unit_rows]
    enrol_values = {"status": 2, "progress": 100, "completed_on": T_DONE, "updated_at": T_DONE}
    scopes = rounds = rows_read = 0
    with CpuMeter() as m:
        while True:
            async with engine.begin() as conn:
                claims = await repo.claim(conn, "bench-floor", now_ms(), 30_000, 100)
            if not claims:
                break
            rounds += 1
            for c in claims:
                s = c.scope
                async with engine.begin() as conn:
                    rows_read += len(await load_scope(conn, s))
                    await conn.execute(sa.delete(agg).where(where_scope(agg, s)))
                    await conn.execute(sa.insert(agg), [{**t, "user_id": s.user_id} for t in templates])
                    await conn.execute(sa.update(en).where(where_scope(en, s)).values(enrol_values))
                    await conn.execute(sa.delete(d).where(where_scope(d, s), d.c.seq == c.seq))
                scopes += 1
    return {"kind": "floor", "scopes": scopes, "rounds": rounds, "rows_read": rows_read, "wall": m.wall,
            "proc_cpu": m.proc, "pg_cpu": m.pg, "machine": m.machine, "warnings": 0}


async def throughput_async(url: str, args, stack: str) -> dict:
    from viewer_service.adapters.db.engine import make_engine
    from viewer_service.adapters.db.tables import enrolment, event_outbox, scope_dirty, user_activity_agg
    from viewer_service.services.catalog import Catalog

    engine = make_engine(url)
    catalog = Catalog(engine)
    out: dict = {"passes": [], "checks": {}}
    try:
        doc, units, leaves = collection_doc()
        c = await catalog.put(COL, doc)
        assert len(c.required_leaf_nodes) == UNITS * PER_UNIT and len(c.units) == UNITS, c.units
        s = await seed(engine, args.learners, leaves)
        users = s["users"]
        out["seed_s"], out["seed_rows"] = s["seconds"], s["rows"]
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                out["autovacuum"] = (await conn.exec_driver_sql("SHOW autovacuum")).scalar()
        say(f"[{stack}] seeded {s['rows']:,} rows, {len(users):,} enrolments and marks in {s['seconds']:.1f} s")
        for rep in range(1, args.repeats + 1):
            # Repeat 1: the worker first (its first completion); then alternate who goes first.
            order = ("worker", "floor") if rep % 2 == 1 else ("floor", "worker")
            for kind in order:
                if out["passes"]:
                    await mark_all_dirty(engine, users)
                    if engine.dialect.name == "postgresql":
                        await vacuum(engine)
                r = await (worker_pass(engine, catalog) if kind == "worker" else floor_pass(engine, units, leaves))
                r["repeat"] = rep
                r["left"] = await count(engine, scope_dirty)
                out["passes"].append(r)
                if kind == "worker" and rep == 1:
                    out["checks"]["completed_enrolments"] = await count(
                        engine, enrolment, enrolment.c.completed_on.is_not(None))
                    out["checks"]["outbox_events"] = await count(engine, event_outbox)
                say(f"[{stack}] repeat {rep} {kind}: {r['scopes']:,} scopes in {r['wall']:.2f} s "
                    f"= {r['scopes'] / r['wall']:,.0f}/s ({r['wall'] / max(1, r['scopes']) * 1000:.2f} ms/scope), "
                    f"{r['rounds']} rounds, left {r['left']}, warnings {r['warnings']}")
        out["checks"]["agg_rows"] = await count(engine, user_activity_agg)
        out["checks"]["outbox_events_end"] = await count(engine, event_outbox)
    finally:
        await catalog.close()
        await engine.dispose()
    return out


def run_throughput(stack: str, args) -> dict:
    from viewer_service.adapters.db.migrate import upgrade

    cleanup = Cleanup()
    try:
        tmp = tempfile.mkdtemp(prefix="viewer-bench-w-")
        cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
        store = Store(stack, args.pg_url, cleanup, tmp, say, prefix="viewer_bench_w_")
        upgrade(store.url)
        res = asyncio.run(throughput_async(store.url, args, stack))
        res["db"] = store.name if stack == "postgres" else "SQLite file in a temp dir"
        return res
    finally:
        cleanup.run()

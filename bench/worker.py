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

import argparse
import asyncio
import datetime as dt
import json
import logging
import math
import os
import platform
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from harness import BenchError, Cleanup, _sigterm, free_port, med, pg_exec, redis_delete_prefix

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
NCPU = os.cpu_count() or 1
CLK_TCK = os.sysconf("SC_CLK_TCK")

COL = "bench_col50"  # throughput: 5 units x 10 leaves
CTX = "bench_batch"
UNITS, PER_UNIT = 5, 10
LAG_COL = "bench_lag5"  # lag: 5 leaves, no units
LAG_LEAVES = [f"do_lag{i}" for i in range(1, 6)]
T_DONE = 1_763_000_000_000  # the seeded rows' completion time (epoch ms)


def say(msg: str) -> None:
    print(f"bench-worker: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- statistics, CPU

def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def fmt(x, nd=0) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{nd}f}"


def pg_cpu_s() -> float:
    """CPU seconds of every PostgreSQL process on the machine (ones that end in between are missed)."""
    total = 0.0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if Path(f"/proc/{d}/comm").read_text().strip() != "postgres":
                continue
            raw = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        f = raw[raw.rindex(")") + 2:].split()
        total += (int(f[11]) + int(f[12])) / CLK_TCK
    return total


def machine_cpu() -> tuple[int, int]:
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0)
    total = sum(parts[:8])
    return total - idle, total


def machine_busy_sample(seconds: float = 1.0) -> float:
    b0, t0 = machine_cpu()
    time.sleep(seconds)
    b1, t1 = machine_cpu()
    return (b1 - b0) / max(1, t1 - t0) * NCPU


class CpuMeter:
    """Process CPU (this script, all threads), PostgreSQL CPU and machine CPU over a span."""

    def __enter__(self):
        self.p0, self.g0, self.m0, self.t0 = time.process_time(), pg_cpu_s(), machine_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        self.proc = time.process_time() - self.p0
        self.pg = pg_cpu_s() - self.g0
        m1 = machine_cpu()
        self.machine = (m1[0] - self.m0[0]) / max(1, m1[1] - self.m0[1]) * NCPU
        return False


# --------------------------------------------------------------------------- PostgreSQL / Redis / SQLite

def asyncpg_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain):]
    return url


def with_dbname(url: str, name: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


class Store:
    """Where one measurement stores into: a SQLite file in a temp dir, or a fresh PostgreSQL
    database (`viewer_bench_w_<hex>`); both removed by `drop()`."""

    def __init__(self, stack: str, args, cleanup: Cleanup, tmp: str):
        self.stack = stack
        if stack == "sqlite":
            self.url = f"sqlite+aiosqlite:///{tmp}/viewer.db"
            self.name = f"{tmp}/viewer.db"
        else:
            self.name = f"viewer_bench_w_{secrets.token_hex(6)}"
            self.admin = args.pg_url
            pg_exec(self.admin, f'CREATE DATABASE "{self.name}"')
            cleanup.push(f"database {self.name}", self.drop)
            self.url = asyncpg_url(with_dbname(self.admin, self.name))
            say(f"[{stack}] created database {self.name}")

    def drop(self) -> None:
        pg_exec(self.admin, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        say(f"[{self.stack}] dropped database {self.name}")


# --------------------------------------------------------------------------- log capture (in-process worker)

class CountingHandler(logging.Handler):
    """Counts WARNING+ records of viewer_service (the worker logs failed recomputes there)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        if record.name.startswith("viewer_service"):
            self.records.append(f"{record.levelname} {record.name}: {record.getMessage()}"[:300])


LOG_COUNTER = CountingHandler()


# --------------------------------------------------------------------------- 1. throughput

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
        store = Store(stack, args, cleanup, tmp)
        upgrade(store.url)
        res = asyncio.run(throughput_async(store.url, args, stack))
        res["db"] = store.name if stack == "postgres" else "SQLite file in a temp dir"
        return res
    finally:
        cleanup.run()


# --------------------------------------------------------------------------- 2. end-to-end lag

def service_exe() -> str:
    for cand in (Path(sys.executable).parent / "viewer-service", ROOT / ".venv" / "bin" / "viewer-service"):
        if cand.exists():
            return str(cand)
    found = shutil.which("viewer-service")
    if found:
        return found
    raise BenchError("viewer-service not found; run with the project's venv: .venv/bin/python bench/worker.py")


class Proc:
    """A service subprocess in its own process group, output to a log file."""

    def __init__(self, name: str, cmd: list[str], env: dict, cwd: str, log_path: Path):
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "ab")
        self._log.write(f"# {' '.join(cmd)}\n".encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                say(f"{self.name} did not stop within 30 s, killing it")
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        self._log.close()


def tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def scan_log(path: Path) -> dict:
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    bad = [ln for ln in lines if " WARNING " in ln or " ERROR " in ln or " CRITICAL " in ln
           or ln.startswith("Traceback")]
    return {"lines": len(lines), "warnings": sum(" WARNING " in ln for ln in lines),
            "errors": sum((" ERROR " in ln or " CRITICAL " in ln) for ln in lines),
            "tracebacks": sum(ln.startswith("Traceback") for ln in lines), "first": bad[:6]}


def wait_health(url: str, proc: Proc, timeout: float = 60) -> float:
    t0 = time.monotonic()
    while True:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.proc.returncode}; log:\n{tail(proc.log_path)}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"/health did not answer within {timeout:.0f} s; log:\n{tail(proc.log_path)}")
        time.sleep(0.1)


def wait_log(proc: Proc, needle: str, timeout: float = 60) -> None:
    t0 = time.monotonic()
    while needle not in proc.log_path.read_text(errors="replace"):
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.proc.returncode}; log:\n{tail(proc.log_path)}")
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{proc.name} did not log {needle!r} within {timeout:.0f} s:\n{tail(proc.log_path)}")
        time.sleep(0.1)


class Observer:
    """Polls, every `interval` s, the enrolment table (completed_on set) through its own engine,
    and the event file (new enrol-complete AUDIT lines); records when each learner first shows."""

    def __init__(self, url: str, events_path: str, interval: float = 0.01):
        from viewer_service.adapters.db.engine import make_engine, reader

        self.engine = make_engine(url, pool_size=1)
        self.reader = reader(self.engine)
        self.events_path = events_path
        self.interval = interval
        self.stored: dict[str, float] = {}
        self.delivered: dict[str, float] = {}
        self.recomputed: dict[str, float] = {}  # the event's ets: when the worker recomputed (epoch s)
        self.event_lines = 0
        self.foreign_lines = 0
        self.polls = 0
        self.poll_s: list[float] = []
        self._offset = 0
        self._partial = b""
        self._task: asyncio.Task | None = None
        self.error: str | None = None

    def start(self):
        self._task = asyncio.create_task(self._run())

    async def close(self):
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.engine.dispose()

    async def _run(self):
        import sqlalchemy as sa

        from viewer_service.adapters.db.tables import enrolment as en

        q = sa.select(en.c.user_id).where(en.c.collection_id == LAG_COL, en.c.completed_on.is_not(None))
        while True:
            t0 = time.monotonic()
            try:
                async with self.reader.connect() as conn:
                    users = (await conn.execute(q)).scalars().all()
                now = time.time()
                for u in users:
                    self.stored.setdefault(u, now)
                self._read_events(time.time())
            except Exception as e:  # noqa: BLE001 - reported, keep polling
                self.error = repr(e)
            self.polls += 1
            self.poll_s.append(time.monotonic() - t0)
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - t0)))

    def _read_events(self, now: float) -> None:
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            self.event_lines += 1
            try:
                ev = json.loads(line)
            except ValueError:
                self.foreign_lines += 1
                continue
            if ev.get("eid") == "AUDIT" and (ev.get("edata") or {}).get("type") == "enrol-complete":
                user = (ev.get("actor") or {}).get("id")
                self.delivered.setdefault(user, now)
                if isinstance(ev.get("ets"), int):
                    self.recomputed.setdefault(user, ev["ets"] / 1000)


class Client:
    def __init__(self, base: str):
        import httpx

        self.http = httpx.AsyncClient(base_url=base, timeout=30,
                                      limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))
        self.non2xx: list[str] = []
        self.requests = 0

    async def call(self, method: str, path: str, body: dict) -> dict:
        self.requests += 1
        r = await self.http.request(method, path, json={"request": body})
        if r.status_code >= 300:
            self.non2xx.append(f"{method} {path} -> {r.status_code} {r.text[:200]}")
            raise BenchError(f"{method} {path} answered {r.status_code}: {r.text[:300]}")
        return r.json()

    async def close(self):
        await self.http.aclose()


async def learner(client: Client, user: str) -> tuple[float, dict]:
    """Enrol, start+end the 5 leaves; returns (wall time of the last end's ack, summary)."""
    await client.call("POST", "/v1/enrol", {"userId": user, "collectionId": LAG_COL})
    for leaf in LAG_LEAVES:
        await client.call("POST", "/v1/view/start", {"userId": user, "contentId": leaf, "collectionId": LAG_COL})
        await client.call("POST", "/v1/view/end", {"userId": user, "contentId": leaf, "collectionId": LAG_COL})
    acked = time.time()
    s = await client.call("POST", "/v1/summary/read", {"userId": user, "collectionId": LAG_COL})
    return acked, s["result"]


def breakdown(acks: dict[str, float], obs: "Observer") -> dict:
    """Where the lag goes, by the event's ets (the worker's clock when it recomputed the scope)."""
    us = [u for u in acks if u in obs.recomputed and u in obs.stored and u in obs.delivered]
    parts = {"ack_to_recompute": [(obs.recomputed[u] - acks[u]) * 1000 for u in us],
             "recompute_to_stored": [(obs.stored[u] - obs.recomputed[u]) * 1000 for u in us],
             "recompute_to_delivered": [(obs.delivered[u] - obs.recomputed[u]) * 1000 for u in us]}
    return {k: {"p50": pct(v, 50), "p90": pct(v, 90), "max": max(v) if v else float("nan")} for k, v in parts.items()}


def lag_stats(acks: dict[str, float], seen: dict[str, float]) -> dict:
    lags = [(seen[u] - t) * 1000 for u, t in acks.items() if u in seen]
    return {"n": len(lags), "missing": len(acks) - len(lags), "p50": pct(lags, 50), "p90": pct(lags, 90),
            "max": max(lags) if lags else float("nan"), "min": min(lags) if lags else float("nan")}


async def wait_seen(obs: Observer, users, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(u in obs.stored and u in obs.delivered for u in users):
            return True
        await asyncio.sleep(0.01)
    return False


async def lag_async(base: str, url: str, events_path: str, args, stack: str, procs: list[Proc]) -> dict:
    client = Client(base)
    obs = Observer(url, events_path)
    out: dict = {}
    try:
        await client.call("PUT", f"/v1/collection/{LAG_COL}", {"name": "x", "leafNodes": LAG_LEAVES})
        obs.start()
        tag = secrets.token_hex(3)

        # Loaded: M learners, `concurrency` at a time.
        users = [f"bench_lag_{tag}_{i:04d}" for i in range(args.lag_learners)]
        sem = asyncio.Semaphore(args.lag_concurrency)
        acks: dict[str, float] = {}
        summaries: dict[str, dict] = {}

        async def one(u):
            async with sem:
                acks[u], summaries[u] = await learner(client, u)

        t0 = time.monotonic()
        with CpuMeter() as load_cpu:
            await asyncio.gather(*(one(u) for u in users))
        load_s = time.monotonic() - t0
        ok = await wait_seen(obs, users, 60)
        out["loaded"] = {
            "learners": len(users), "wall_s": load_s, "requests_per_s": len(users) * 12 / load_s,
            "machine_busy": load_cpu.machine, "all_seen": ok,
            "stored": lag_stats(acks, obs.stored), "delivered": lag_stats(acks, obs.delivered),
            "breakdown": breakdown(acks, obs),
            "summary_status2": sum(1 for s in summaries.values() if s.get("status") == 2),
            "summary_completed_on": sum(1 for s in summaries.values() if s.get("completedOn") is not None),
            "summary_progress100": sum(1 for s in summaries.values() if s.get("progress") == 100),
        }
        say(f"[{stack}] lag, loaded: {len(users)} learners in {load_s:.1f} s; stored p50 "
            f"{out['loaded']['stored']['p50']:.0f} ms, delivered p50 {out['loaded']['delivered']['p50']:.0f} ms")

        # Idle: one learner at a time, each once the previous one's event is out (worker idle).
        idle_users = [f"bench_lag_{tag}_idle{i:03d}" for i in range(args.idle_learners)]
        iacks: dict[str, float] = {}
        isum: dict[str, dict] = {}
        rnd = random.Random(1)
        for u in idle_users:
            await asyncio.sleep(rnd.uniform(0.05, 0.3))
            iacks[u], isum[u] = await learner(client, u)
            if not await wait_seen(obs, [u], 10):
                break
        out["idle"] = {
            "learners": len(idle_users), "stored": lag_stats(iacks, obs.stored),
            "delivered": lag_stats(iacks, obs.delivered), "breakdown": breakdown(iacks, obs),
            "summary_status2": sum(1 for s in isum.values() if s.get("status") == 2),
            "summary_completed_on": sum(1 for s in isum.values() if s.get("completedOn") is not None),
            "summary_progress100": sum(1 for s in isum.values() if s.get("progress") == 100),
        }
        say(f"[{stack}] lag, idle: stored p50 {out['idle']['stored']['p50']:.0f} ms, "
            f"delivered p50 {out['idle']['delivered']['p50']:.0f} ms")
        # Every event line: exactly 2 per completed learner (cert-issue + enrol-complete)?
        await asyncio.sleep(0.3)
        obs._read_events(time.time())
        out["event_lines"] = obs.event_lines
        out["expected_event_lines"] = 2 * (len(users) + len(idle_users))
        out["observer"] = {"polls": obs.polls, "poll_ms_p50": pct(obs.poll_s, 50) * 1000,
                           "poll_ms_p99": pct(obs.poll_s, 99) * 1000, "error": obs.error}
        out["requests"] = client.requests
        out["non2xx"] = client.non2xx[:5]
        out["non2xx_count"] = len(client.non2xx)
        for p in procs:
            if not p.alive():
                out.setdefault("died", []).append(f"{p.name} exited with {p.proc.returncode}")
    finally:
        await obs.close()
        await client.close()
    return out


def run_lag(stack: str, args, logdir: Path) -> dict:
    cleanup = Cleanup()
    procs: list[Proc] = []
    res: dict = {}
    try:
        tmp = tempfile.mkdtemp(prefix="viewer-bench-w-")
        cleanup.push(f"temp dir {tmp}", lambda: shutil.rmtree(tmp, ignore_errors=True))
        store = Store(stack, args, cleanup, tmp)
        events = f"{tmp}/events.jsonl"
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
        env.update(VIEWER_DATABASE_URL=store.url, VIEWER_EVENT_SINK=f"file:{events}",
                   VIEWER_DOWNLOAD_DIR=f"{tmp}/downloads")
        if stack == "postgres":
            prefix = f"bench-w-{secrets.token_hex(6)}:"
            env.update(VIEWER_REDIS_URL=args.redis_url, VIEWER_REDIS_PREFIX=prefix)
            cleanup.push(f"redis keys {prefix}*", lambda: say(
                f"[{stack}] deleted {redis_delete_prefix(args.redis_url, prefix)} redis keys under {prefix}"))
            res["redis_prefix"] = prefix
        exe = service_exe()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        serve = Proc("serve", [exe, "serve", "--host", "127.0.0.1", "--port", str(port), "--migrate"],
                     env, tmp, logdir / f"{stack}-serve.log")
        procs.append(serve)
        cleanup.push("serve", serve.stop)
        res["startup_s"] = wait_health(base, serve)
        if stack == "postgres":
            worker = Proc("worker", [exe, "worker"], env, tmp, logdir / f"{stack}-worker.log")
            procs.append(worker)
            cleanup.push("worker", worker.stop)
            wait_log(worker, " running")
        res.update(asyncio.run(lag_async(base, store.url, events, args, stack, procs)))
    finally:
        cleanup.run()
        res["logs"] = {p.name: {"path": os.path.relpath(p.log_path, ROOT), **scan_log(p.log_path)} for p in procs}
    return res


# --------------------------------------------------------------------------- report

def versions(args) -> dict:
    import sqlite3
    from importlib.metadata import version

    v = {"python": platform.python_version(), "SQLite": sqlite3.sqlite_version}
    for pkg in ("sqlalchemy", "asyncpg", "aiosqlite", "httpx"):
        try:
            v[pkg] = version(pkg)
        except Exception:  # noqa: BLE001
            pass
    if "postgres" in args.stacks:
        try:
            v["PostgreSQL"] = pg_exec(args.pg_url, "SHOW server_version", fetch=True)
        except Exception as e:  # noqa: BLE001
            v["PostgreSQL"] = f"unreachable ({e})"
    return v


LABEL = {"sqlite": "SQLite (file, WAL, synchronous=FULL)", "postgres": "PostgreSQL"}


def summarize_tp(tp: dict) -> dict:
    ps = tp["passes"]
    w = [p for p in ps if p["kind"] == "worker"]
    f = [p for p in ps if p["kind"] == "floor"]
    first = w[0] if w else None
    steady = w[1:]

    def rate(p):
        return p["scopes"] / p["wall"] if p["wall"] else float("nan")

    def per(ps_, key):
        # A PostgreSQL process that ended during the pass takes its CPU time with it: a negative
        # difference is no measurement.
        xs = [p[key] / max(1, p["scopes"]) * 1000 for p in ps_]
        return float("nan") if any(x < 0 for x in xs) else med(xs)

    s = {
        "first_rate": rate(first) if first else float("nan"),
        "first_ms": first["wall"] / max(1, first["scopes"]) * 1000 if first else float("nan"),
        "steady_rate": med([rate(p) for p in steady]),
        "steady_ms": med([p["wall"] / max(1, p["scopes"]) * 1000 for p in steady]),
        "floor_rate": med([rate(p) for p in f]),
        "floor_ms": med([p["wall"] / max(1, p["scopes"]) * 1000 for p in f]),
        "steady_cpu": per(steady, "proc_cpu"), "floor_cpu": per(f, "proc_cpu"),
        "first_cpu": per([first], "proc_cpu") if first else float("nan"),
        "steady_pg": per(steady, "pg_cpu"), "floor_pg": per(f, "pg_cpu"),
        "first_pg": per([first], "pg_cpu") if first else float("nan"),
        "steady_all": [rate(p) for p in steady], "floor_all": [rate(p) for p in f],
    }
    s["ratio"] = s["steady_rate"] / s["floor_rate"] if s["floor_rate"] else float("nan")
    s["first_ratio"] = s["first_rate"] / s["floor_rate"] if s["floor_rate"] else float("nan")
    return s


def report(args, started, machine_load, vers, results, argv) -> str:
    L = []
    L.append(f"# Worker benchmark (`bench/worker.py`), {started.strftime('%Y-%m-%d %H:%M:%S %Z').strip()}")
    L.append("")
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")
    L.append(f"Machine: {NCPU} CPUs ({model}), Linux {platform.release()}; load before the run "
             f"{machine_load:.2f} cores busy. Versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()) + ".  ")
    L.append(f"Command: `{' '.join(['.venv/bin/python bench/worker.py', *argv])}` "
             f"(learners {args.learners:,}, repeats {args.repeats}, lag learners {args.lag_learners} at "
             f"concurrency {args.lag_concurrency}, idle learners {args.idle_learners}).")

    L.append("")
    L.append(f"## 1. Throughput: recomputes of a 50-leaf collection ({UNITS} units × {PER_UNIT} leaves)")
    L.append("")
    L.append(f"{args.learners:,} learners, each with 50 completed rows (status 2) in one scope, an active "
             f"enrolment and a dirty mark; `AggregationWorker(engine, catalog, batch=100).run_once()` in a "
             f"loop until the queue is empty, in this process (wall time). Per scope the worker writes "
             f"1 Course + {UNITS} Unit aggregate rows, the enrolment, and drops the mark.")
    L.append("")
    L.append("- **first completion** = repeat 1: every enrolment completes, so each recompute also queues "
             "2 outbox events (cert-issue, enrol-complete; no dispatcher runs here, they stay queued).")
    steady = (f"repeats 2..{args.repeats} (median)" if args.repeats > 2 else "repeat 2" if args.repeats == 2
              else "not measured (needs --repeats 2 or more)")
    L.append(f"- **steady recompute** = {steady}: the scopes are already completed, no events. Every pass "
             "re-marks all scopes dirty first.")
    L.append("- **floor** (median of all repeats, interleaved with the worker's: W F, F W, W F, …): the same "
             "claim statement (100 scopes per round, with lease), then per scope one transaction that reads "
             "the scope's 50 raw rows (`load_scope`), deletes and inserts the same 6 aggregate rows with "
             "constant values, updates the enrolment with constants and deletes the mark by seq. No catalog "
             "lookup, no scope lock, no read of the stored aggregate or enrolment, no compute.")
    L.append("")
    L.append("| stack | first completion scopes/s (ms/scope) | steady recompute scopes/s (ms/scope) | floor scopes/s (ms/scope) | steady / floor | first / floor | bench-process CPU ms/scope: first, steady, floor | PostgreSQL CPU ms/scope: first, steady, floor | steady, floor scopes/s per repeat | seeding |")
    L.append("|---|---:|---:|---:|---:|---:|---|---|---|---|")
    problems = []
    for stack, r in results.items():
        tp = r.get("throughput")
        if not tp:
            why = f"FAILED: {r['throughput_error']}" if "throughput_error" in r else "skipped"
            L.append(f"| {LABEL[stack]} | {why} |||||||||")
            continue
        s = summarize_tp(tp)
        pg = (f"{fmt(s['first_pg'], 2)}, {fmt(s['steady_pg'], 2)}, {fmt(s['floor_pg'], 2)}"
              if stack == "postgres" else "n/a (in process)")
        L.append(f"| {LABEL[stack]} | {fmt(s['first_rate'])} ({fmt(s['first_ms'], 2)}) | "
                 f"{fmt(s['steady_rate'])} ({fmt(s['steady_ms'], 2)}) | {fmt(s['floor_rate'])} ({fmt(s['floor_ms'], 2)}) | "
                 f"{fmt(s['ratio'], 2)} | {fmt(s['first_ratio'], 2)} | "
                 f"{fmt(s['first_cpu'], 2)}, {fmt(s['steady_cpu'], 2)}, {fmt(s['floor_cpu'], 2)} | {pg} | "
                 f"{', '.join(fmt(x) for x in s['steady_all'])}; {', '.join(fmt(x) for x in s['floor_all'])} | "
                 f"{tp['seed_rows']:,} rows in {tp['seed_s']:.1f} s |")
        for p in tp["passes"]:
            if p["left"] or p.get("deferred") or p["warnings"] or p["scopes"] != args.learners:
                problems.append(f"{LABEL[stack]} repeat {p['repeat']} {p['kind']}: {p['scopes']} scopes of "
                                f"{args.learners}, {p['left']} marks left, deferred {p.get('deferred', 0)}, "
                                f"{p['warnings']} warnings")
        ch = tp["checks"]
        if ch.get("completed_enrolments") != args.learners or ch.get("outbox_events") != 2 * args.learners:
            problems.append(f"{LABEL[stack]}: after the first completion {ch.get('completed_enrolments')} enrolments "
                            f"completed and {ch.get('outbox_events')} outbox events (expected {args.learners} and "
                            f"{2 * args.learners})")
        if ch.get("agg_rows") != args.learners * (UNITS + 1) or ch.get("outbox_events_end") != 2 * args.learners:
            problems.append(f"{LABEL[stack]}: at the end {ch.get('agg_rows')} aggregate rows and "
                            f"{ch.get('outbox_events_end')} outbox events (expected {args.learners * (UNITS + 1)} "
                            f"and {2 * args.learners})")
    av = [r["throughput"].get("autovacuum") for r in results.values() if (r.get("throughput") or {}).get("autovacuum")]
    if av:
        L.append("")
        L.append(f"PostgreSQL: `autovacuum` is `{av[0]}` on this server. After loading, the seeded tables get a "
                 "`VACUUM (ANALYZE)` (not the aggregate and outbox tables, which stay as a fresh deployment has them), and "
                 "before every pass after the first the queue, aggregate, enrolment and outbox tables get an "
                 "untimed `VACUUM (ANALYZE)`, as autovacuum would give tables this busy.")
    L.append("")
    L.append("CPU columns: CPU seconds per scope of this benchmark process (the worker's Python code, "
             "SQLAlchemy, the driver; on SQLite also the database engine itself, which runs in "
             "aiosqlite's thread) and of all PostgreSQL processes on the machine (n/a when one of them "
             "ended during the pass and took its CPU count with it).")
    if problems:
        L.append("")
        L.append("Checks that failed: " + "; ".join(problems) + ".")
    elif any(r.get("throughput") for r in results.values()):
        L.append("")
        L.append(f"Checks: every pass recomputed all {args.learners:,} scopes and left no marks; no worker "
                 f"warnings; repeat 1 completed all enrolments and queued exactly 2 events each; later "
                 f"repeats queued none.")

    L.append("")
    L.append("## 2. End-to-end lag: acknowledged last view end → stored completion → event delivered")
    L.append("")
    L.append("`viewer-service serve --migrate` as a subprocess (SQLite: the worker and the event "
             "dispatcher run inside it; PostgreSQL: plus one `viewer-service worker` process, Redis cache), "
             "default settings (`VIEWER_WORKER_POLL_SECONDS` 0.2, batch 100), "
             "`VIEWER_EVENT_SINK=file:<tmp>/events.jsonl`. A learner: `POST /v1/enrol`, then "
             f"`view/start` + `view/end` of each of the {len(LAG_LEAVES)} leaves of a 5-leaf collection "
             "(httpx, one connection pool). The lag runs from the moment the learner's last `view/end` was "
             "acknowledged to the moment a poller (every 10 ms, own engine) sees the enrolment's "
             "`completed_on` set in the database (**stored**), and sees the learner's enrol-complete AUDIT "
             "line in the events file (**delivered**); resolution ≈ 10 ms.")
    L.append("")
    L.append(f"- **loaded**: {args.lag_learners} learners, {args.lag_concurrency} at a time (the worker is busy "
             "while the requests come in).")
    L.append(f"- **idle**: {args.idle_learners} learners one after another, each started 50–300 ms after the "
             "previous one's event was delivered (the worker is idle, polling).")
    L.append("")
    L.append("| stack | phase | learners | stored p50 / p90 / max ms | delivered p50 / p90 / max ms | summary/read right after the last end: status 2, completedOn set | load |")
    L.append("|---|---|---:|---|---|---|---|")
    lag_notes = []
    for stack, r in results.items():
        lg = r.get("lag")
        if not lg or "loaded" not in lg:
            why = f"FAILED: {r['lag_error']}" if "lag_error" in r else "skipped"
            L.append(f"| {LABEL[stack]} | {why} ||||||")
            continue
        for phase in ("loaded", "idle"):
            ph = lg.get(phase)
            if not ph:
                continue
            st, de = ph["stored"], ph["delivered"]
            load = (f"{ph['learners'] * 12:,} requests in {ph['wall_s']:.1f} s ({ph['requests_per_s']:,.0f}/s), "
                    f"machine {ph['machine_busy']:.2f} cores busy" if phase == "loaded" else "one learner at a time")
            miss = ""
            if st["missing"] or de["missing"]:
                miss = f" (**not seen: {st['missing']} stored, {de['missing']} delivered**)"
            L.append(f"| {LABEL[stack]} | {phase} | {ph['learners']} | {fmt(st['p50'])} / {fmt(st['p90'])} / "
                     f"{fmt(st['max'])}{miss} | {fmt(de['p50'])} / {fmt(de['p90'])} / {fmt(de['max'])} | "
                     f"{ph['summary_status2']}/{ph['learners']}, {ph['summary_completed_on']}/{ph['learners']} | {load} |")
        if lg.get("event_lines") != lg.get("expected_event_lines"):
            lag_notes.append(f"{LABEL[stack]}: {lg.get('event_lines')} event lines in the file, expected "
                             f"{lg.get('expected_event_lines')} (2 per completed learner)")
        if lg.get("non2xx_count"):
            lag_notes.append(f"{LABEL[stack]}: {lg['non2xx_count']} non-2xx answers, e.g. {lg['non2xx'][0]}")
        for d in lg.get("died", []):
            lag_notes.append(f"{LABEL[stack]}: {d}")
        if lg.get("observer", {}).get("error"):
            lag_notes.append(f"{LABEL[stack]}: the poller saw an error: {lg['observer']['error']}")
    rows = [(stack, phase, r["lag"][phase]["breakdown"]) for stack, r in results.items()
            for phase in ("loaded", "idle") if (r.get("lag") or {}).get(phase, {}).get("breakdown")]
    if rows:
        L.append("")
        L.append("Where the lag goes, split at the recompute that completed the enrolment (its time is the "
                 "`ets` of the learner's enrol-complete event, the worker's clock): p50 / p90 / max ms.")
        L.append("")
        L.append("| stack | phase | last end acknowledged → recompute | recompute → completion visible | recompute → event in the file |")
        L.append("|---|---|---|---|---|")
        for stack, phase, b in rows:
            L.append(f"| {LABEL[stack]} | {phase} | " + " | ".join(
                f"{fmt(b[k]['p50'])} / {fmt(b[k]['p90'])} / {fmt(b[k]['max'])}"
                for k in ("ack_to_recompute", "recompute_to_stored", "recompute_to_delivered")) + " |")
    L.append("")
    L.append("`summary/read` is read-after-write: it computes the summary from the live content statuses, so "
             "the status-2 column is how many learners it showed completed on the first read right after "
             "their last `view/end` was acknowledged, before the worker ran.")
    L.append("")
    L.append("How the lag arises (src/viewer_service/loops.py, worker.py, api/enrolments.py): a worker "
             "runs rounds back to back while it finds work and sleeps `VIEWER_WORKER_POLL_SECONDS` after an "
             "empty round. Only `POST /v1/enrol` (and an assessment submit) wakes the worker inside `serve` "
             "(SQLite); a view end wakes nothing, and a separate `viewer-service worker` process (PostgreSQL) is never woken. So with an "
             "idle PostgreSQL worker a completion waits 0 to 0.2 s (uniform) for the next poll; with the "
             "SQLite in-serve worker it waits for the poll that comes 0.2 s after the recompute that the "
             "enrolment triggered, i.e. 0.2 s minus the time the learner spent on its 10 view calls. The "
             "event dispatcher runs in the worker's process and the worker wakes it after each round that queued "
             "events, so an idle system delivers one claim, one fsynced append and one delete after the stored "
             "completion. Under load the worker does not sleep: the lag is the queue ahead of the scope times "
             "the per-recompute time. On SQLite the view writes, the worker's claims and recomputes and the "
             "dispatcher's claims and deletes all take the one write lock (`BEGIN IMMEDIATE`); a waiter "
             "sleeps in SQLite's busy handler (up to 100 ms per retry) and can lose the lock several times "
             "in a row, which is what the long tail of SQLite's loaded delivery is made of.")
    if lag_notes:
        L.append("")
        L.append("Problems: " + "; ".join(lag_notes) + ".")

    logs = [(stack, name, lg) for stack, r in results.items() for name, lg in (r.get("lag") or {}).get("logs", {}).items()]
    if logs or LOG_COUNTER.records:
        L.append("")
        L.append("## Logs")
        L.append("")
        for stack, name, lg in logs:
            L.append(f"- {LABEL[stack]} `{name}` (`{lg['path']}`): {lg['lines']} lines, {lg['warnings']} WARNING, "
                     f"{lg['errors']} ERROR, {lg['tracebacks']} tracebacks")
            for ln in lg["first"]:
                L.append(f"  - `{ln[:240]}`")
        L.append(f"- throughput (in this process): {len(LOG_COUNTER.records)} warnings from viewer_service"
                 + (": " + "; ".join(f"`{x}`" for x in LOG_COUNTER.records[:5]) if LOG_COUNTER.records else ""))
    L.append("")
    return "\n".join(L)


# --------------------------------------------------------------------------- main

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
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)
    started = dt.datetime.now().astimezone()
    stamp = started.strftime("%Y%m%d-%H%M%S")
    out_root = Path(args.out)
    logdir = out_root / f"worker-{stamp}"
    logdir.mkdir(parents=True, exist_ok=True)
    load = machine_busy_sample()
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

"""Engine creation: one place that knows the differences between SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from sqlalchemy import event, exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

# SQLSTATEs meaning "the database cannot serve now": class 08 (connection exception), 53
# (insufficient resources, e.g. too many connections), 57P01-57P03 (shutting down, crashed,
# starting up), 40001/40P01 are not here: those are retried by the writers.
_UNAVAILABLE_STATES = ("08", "53", "57P01", "57P02", "57P03")
_UNAVAILABLE_TYPES = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError, TimeoutError)


def sqlstate(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    return str(getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or "")


def is_unavailable(e: BaseException) -> bool:
    """True when `e` (or what caused it) says the database is down, restarting or out of
    connections: the client should retry, it did nothing wrong (a 503, never a 500)."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, _UNAVAILABLE_TYPES) or getattr(e, "connection_invalidated", False) \
                or sqlstate(e).startswith(_UNAVAILABLE_STATES):
            return True
        orig = getattr(e, "orig", None)
        if orig is not None and type(orig).__module__.startswith("asyncpg") and \
                type(orig).__name__ in {"ConnectionDoesNotExistError", "InterfaceError", "CannotConnectNowError"}:
            return True
        e, seen = e.__cause__, seen + 1
    return False


def _json_dumps(value) -> str:
    return orjson.dumps(value).decode()


def reader(engine: AsyncEngine) -> AsyncEngine:
    """The same pool, marked read-only: on SQLite its transactions do not take the write lock."""
    return engine.execution_options(readonly=True)


class SerialWriteEngine(AsyncEngine):
    """SQLite has one writer at a time. This process's write transactions (view batches, the
    worker, the dispatcher) queue on an asyncio lock, first come first served, instead of colliding
    in SQLite's busy handler, which sleeps up to 100 ms per retry and can starve a waiter
    (measured: write p99 over 1 s with the worker busy). Read-only transactions (`reader`) are
    plain engines and never wait here."""

    __slots__ = ("_write_lock",)

    @contextlib.asynccontextmanager
    async def begin(self):
        async with self._write_lock:
            async with super().begin() as conn:
                yield conn


def make_engine(url: str, pool_size: int = 10, pre_ping: bool = False) -> AsyncEngine:
    if url.startswith("sqlite"):
        plain = create_async_engine(url, json_serializer=_json_dumps, json_deserializer=orjson.loads)
        engine = SerialWriteEngine(plain.sync_engine)
        engine._write_lock = asyncio.Lock()

        @event.listens_for(engine.sync_engine, "connect")
        def _connect(dbapi_conn, _record):
            # Take over transaction control from the driver, so that BEGIN IMMEDIATE below
            # takes the write lock up front: two writers never deadlock on a lock upgrade.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives a power cut too
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn):
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # A round trip per checkout (~0.2 ms, docs/benchmarks.md); off by default: the check
        # below already catches connections a restart closed, for free.
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

    @event.listens_for(engine.sync_engine, "checkout")
    def _alive(dbapi_conn, _record, _proxy):
        # A PostgreSQL restart closes every connection; the event loop sees each socket close
        # while it idles in the pool. Handing one out would fail the first requests after the
        # restart: instead drop every connection older than now and check out a new one.
        if dbapi_conn.driver_connection.is_closed():
            raise sa_exc.InvalidatePoolError("a pooled connection was closed by the server")

    return engine

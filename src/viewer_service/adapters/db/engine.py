"""Engine creation: one place that knows the differences between SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


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


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
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
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per checkout on the hot path. A connection that
        # died is invalidated on use, and the write path retries the batch (services/views.py).
        pool_recycle=1800,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )

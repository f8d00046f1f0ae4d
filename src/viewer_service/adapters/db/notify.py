"""Waking worker processes at once (PostgreSQL LISTEN/NOTIFY).

A transaction that queues work for the workers (marks a scope dirty) sends a notification in
that transaction, so it is delivered only if the work commits. Every worker process LISTENs on
one connection of its own and wakes its loops. A notification missed while that connection was
down costs at most one fallback poll (`worker_poll_seconds`); on reconnecting the loops are woken
once anyway, in case work was queued meanwhile."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

CHANNEL = "viewer_work"
_NOTIFY = sa.select(sa.func.pg_notify(CHANNEL, ""))


async def notify(conn: AsyncConnection) -> None:
    """Wake the workers when this transaction commits (PostgreSQL; a no-op on SQLite, whose
    worker runs in the serving process and is woken there)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(_NOTIFY)


class Listener:
    """LISTENs on CHANNEL and calls `wake` for every notification, reconnecting as needed."""

    def __init__(self, url: URL, wake: Callable[[], None], *, retry_seconds: float = 1.0,
                 check_seconds: float = 30.0):
        self.dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.wake = wake
        self.retry_seconds = retry_seconds
        self.check_seconds = check_seconds  # how often an idle listening connection is checked
        self.listening = asyncio.Event()  # for tests and the benchmark
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        import asyncpg

        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.dsn)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c: lost.set())
                await conn.add_listener(CHANNEL, lambda *_a: self.wake())
                self.listening.set()
                self.wake()  # work queued while nobody listened
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), self.check_seconds)
                    except TimeoutError:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), self.check_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the database is down: retry, the poll covers meanwhile
                log.warning("listening for worker notifications failed: %r", e)
            finally:
                self.listening.clear()
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(self.retry_seconds)

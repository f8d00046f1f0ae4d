"""The one way a use case runs a transaction: retry a lost race with a short backoff, and turn a
database failure into the service's vocabulary (errors.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ... import metrics
from ...errors import DomainError, ServiceError, Unavailable
from .engine import is_unavailable, reader, sqlstate

T = TypeVar("T")
Work = Callable[[AsyncConnection], Awaitable[T]]


class ConcurrentInsert(Exception):
    """Another transaction inserted a row this one meant to insert: run it again."""


def retryable(e: Exception) -> bool:
    if isinstance(e, ConcurrentInsert) or getattr(e, "connection_invalidated", False):
        return True  # a lost race, or a pooled connection that died (no pre-ping): try again
    return sqlstate(e) in {"40001", "40P01"} or "database is locked" in str(e)


def translate(e: Exception) -> Exception:
    """What to raise for `e`: a DomainError for a value the database refused, Unavailable when it
    cannot serve; anything else is a bug (a logged 500) and passes unchanged."""
    if isinstance(e, ServiceError):
        return e
    if isinstance(e, (DataError, IntegrityError)) or sqlstate(e).startswith("22"):  # class 22: data exception
        return DomainError("the database refused a value of this request", "request")
    if is_unavailable(e):
        return unavailable(e)
    return e


def unavailable(e: BaseException) -> Unavailable:
    return Unavailable(str(e).splitlines()[0] if str(e) else type(e).__name__)


class Transactions:
    """Transactions on one engine for one use case. `name` labels its retries in the metrics."""

    def __init__(self, engine: AsyncEngine, name: str | None = None, *, attempts: int = 10, backoff: float = 0.001):
        self.engine = engine
        self.reader = reader(engine)
        self.attempts = attempts
        self.backoff = backoff
        self._retries = metrics.WRITE_RETRIES.labels(name) if name else None

    async def write(self, work: Work[T], *, translated: bool = True) -> T:
        """Run `work(conn)` in a write transaction, again (after 1, 2, ... backoffs) when it lost a
        race. `translated=False` leaves the last failure as the database raised it."""
        for attempt in range(self.attempts):
            try:
                async with self.engine.begin() as conn:
                    return await work(conn)
            except Exception as e:
                if attempt == self.attempts - 1 or not retryable(e):
                    if translated:
                        raise translate(e) from e
                    raise
                if self._retries is not None:
                    self._retries.inc()
                await asyncio.sleep(self.backoff * (attempt + 1))
        raise AssertionError("unreachable")

    async def read(self, work: Work[T]) -> T:
        """Run `work(conn)` on a read-only connection; failures translated."""
        try:
            async with self.reader.connect() as conn:
                return await work(conn)
        except Exception as e:
            raise translate(e) from e

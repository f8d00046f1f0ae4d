"""The outbox dispatcher: moves queued events to the sink, each exactly once.

Claim a batch (with a lease) and commit, publish, then delete. A dispatcher that dies between
publish and delete leaves its claim to expire; the next claimant sees attempts > 1 and asks the
sink to skip what it already holds (by mid). Any number of dispatchers may run."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from .. import metrics
from ..adapters.db import outbox
from ..adapters.events import Sink
from ..clock import now_ms
from ..loops import PollingLoop

log = logging.getLogger(__name__)

MAX_BACKOFF_MS = 60_000


def backoff_ms(attempts: int) -> int:
    return min(MAX_BACKOFF_MS, 100 * 2 ** min(attempts, 20))


class OutboxDispatcher(PollingLoop):
    name = "outbox"

    def __init__(self, engine: AsyncEngine, sink: Sink, *, worker_id: str, batch: int = 100,
                 lease_ms: int = 30_000, poll_seconds: float = 0.2, clock: Callable[[], int] = now_ms):
        super().__init__(engine, worker_id=worker_id, batch=batch, lease_ms=lease_ms,
                         poll_seconds=poll_seconds, clock=clock)
        self.sink = sink
        self.delivered = 0  # counters, for tests and metrics
        self.failed = 0
        kind = type(sink).__name__.removesuffix("Sink").lower() or "sink"  # file, redisstream, null
        self._delivered = metrics.OUTBOX_DELIVERED.labels(kind)
        self._failures = metrics.OUTBOX_FAILURES.labels(kind)

    async def run_once(self) -> int:
        """Deliver one batch. Returns the number of events delivered (0: nothing due, or the
        sink failed and the batch was released for a later retry)."""
        claimed_at = self.clock()
        async with self.engine.begin() as conn:
            rows = await outbox.claim(conn, self.worker_id, claimed_at, self.lease_ms, self.batch)
        if not rows:
            return 0
        if self.clock() >= claimed_at + self.lease_ms:
            return 0  # stalled past the lease: another claimant may be publishing these now
        events = [(r.payload.get("mid") or f"{r.user_id}:{r.event_id}", r.payload) for r in rows]
        try:
            await self.sink.publish(events, maybe_written=any(r.attempts > 1 for r in rows))
        except Exception as e:  # noqa: BLE001 - any sink failure: retry later, never stop the loop
            self.failed += len(rows)
            self._failures.inc(len(rows))
            log.warning("event sink failed for %d events (attempt %d): %r", len(rows),
                        max(r.attempts for r in rows), e)
            await self._release(rows)
            return 0
        try:
            async with self.engine.begin() as conn:
                await outbox.delete(conn, [r.key for r in rows], self.worker_id)
        except Exception as e:  # noqa: BLE001 - delivered; the lease expires and the sink dedups
            log.warning("could not drop %d delivered events: %r", len(rows), e)
        self.delivered += len(rows)
        self._delivered.inc(len(rows))
        return len(rows)

    async def _release(self, rows: list[outbox.Claimed]) -> None:
        by_due: dict[int, list] = defaultdict(list)
        now = self.clock()
        for r in rows:
            by_due[now + backoff_ms(r.attempts)].append(r.key)
        try:
            async with self.engine.begin() as conn:
                for due_at, keys in by_due.items():
                    await outbox.release(conn, keys, due_at, self.worker_id)
        except Exception as e:  # noqa: BLE001 - the lease expires instead
            log.warning("could not release %d events: %r", len(rows), e)

"""A background loop that polls for work: the aggregation worker and the event dispatcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from .clock import now_ms

log = logging.getLogger(__name__)


class PollingLoop:
    """Runs `run_once()` back to back while it finds work, else sleeps `poll_seconds` or until
    `wake()`. A failing round (the database is down) is logged and retried; never fatal."""

    poll_seconds: float = 0.2
    name = "loop"

    def __init__(self, engine: AsyncEngine, *, worker_id: str, batch: int = 100, lease_ms: int = 30_000,
                 poll_seconds: float = 0.2, clock: Callable[[], int] = now_ms) -> None:
        # What every claim-with-lease loop needs: where to claim, as whom, how many, for how long.
        self.engine = engine
        self.worker_id = worker_id
        self.batch = batch
        self.lease_ms = lease_ms
        self.poll_seconds = poll_seconds
        self.clock = clock
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    async def run_once(self) -> int:
        raise NotImplementedError

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run())

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Stop after the current round. Cancelling a round mid-transaction could leave a SQLite
        connection holding the write lock; a round that outlives the grace is cancelled anyway
        (its claims are taken again once their lease expires)."""
        if self._task:
            self._stopping = True
            self.wake()
            try:
                await asyncio.wait_for(asyncio.shield(self._task), grace_seconds)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        """New work is queued: skip the poll sleep."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before the round, not after: a wake() that arrives during a round that found
            # nothing (its work committed just after the round looked) starts the next one at once.
            self._wake.clear()
            try:
                done = await self.run_once()
            except Exception as e:  # noqa: BLE001 - the database may be down: keep trying
                log.warning("%s round failed: %r", self.name, e)
                done = 0
            if not done and not self._stopping:
                try:
                    # Not wait_for: on 3.11 it swallows a cancel that races a wake(), and
                    # close() then waits forever on a loop that keeps running.
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                except TimeoutError:
                    pass

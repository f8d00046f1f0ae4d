"""The worker's loops together (the aggregation worker of services/aggregation.py, the event
dispatcher, the download purge), and how `serve` and `viewer-service worker` build them."""

from __future__ import annotations

import asyncio
import logging

from .adapters.db.notify import Listener
from .clock import now_ms
from .services.aggregation import AggregationWorker

log = logging.getLogger(__name__)
PURGE_INTERVAL_SECONDS = 60.0


class Background:
    """The worker's loops, as `serve` (embedded) or `viewer-service worker` runs them."""

    def __init__(self, worker: AggregationWorker, dispatcher, sink, listener: Listener | None = None):
        self.worker, self.dispatcher, self.sink = worker, dispatcher, sink
        self.listener = listener  # PostgreSQL: committed marks wake both loops at once

    def wake(self) -> None:
        self.worker.wake()
        self.dispatcher.wake()

    async def start(self) -> None:
        self.dispatcher.start()
        self.worker.start()
        if self.listener is not None:
            self.listener.start()
        self._stop = asyncio.Event()
        self._purge = asyncio.create_task(self._purge_downloads())

    async def _purge_downloads(self) -> None:
        from .services.downloads import purge_expired

        while not self._stop.is_set():
            try:
                await purge_expired(self.worker.engine, now_ms())
            except Exception as e:  # noqa: BLE001 - the database may be down: next round
                log.warning("purging expired downloads failed: %r", e)
            try:  # sleep, but stop at once on close (never cancelled mid-transaction)
                await asyncio.wait_for(self._stop.wait(), PURGE_INTERVAL_SECONDS)
            except TimeoutError:
                pass

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        self._stop.set()
        await asyncio.gather(self._purge, return_exceptions=True)
        await self.worker.close()
        await self.dispatcher.close()
        await self.sink.close()


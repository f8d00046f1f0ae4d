"""The worker's loops together (the aggregation worker of services/aggregation.py, the event
dispatcher, the download purge), and how `serve` and `viewer-service worker` build them."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine

from .adapters.db.notify import Listener
from .clock import now_ms
from .services.aggregation import AggregationWorker
from .services.carry import Carry
from .services.catalog import Catalog

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


def build_worker(settings, engine: AsyncEngine, catalog: Catalog, views=None) -> Background:
    """`views`: the serving process's ViewService when the worker runs inside it; a separate
    worker process makes its own, to publish carried rows to the shared cache."""
    from .adapters.events import make_sink
    from .services.outbox import OutboxDispatcher

    sink = make_sink(settings.event_sink, settings.redis_url, settings.redis_prefix, settings.redis_cluster)
    worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    lease_ms = int(settings.worker_lease_seconds * 1000)
    listens = engine.dialect.name == "postgresql"
    poll = settings.worker_listen_poll_seconds if listens else settings.worker_poll_seconds
    dispatcher = OutboxDispatcher(engine, sink, worker_id=worker_id, batch=settings.worker_batch,
                                  lease_ms=lease_ms, poll_seconds=poll)
    worker = AggregationWorker(engine, catalog, worker_id=worker_id, batch=settings.worker_batch,
                               lease_ms=lease_ms, poll_seconds=poll,
                               retry_ms=int(settings.unknown_collection_retry_seconds * 1000),
                               on_events=dispatcher.wake, views=views,
                               carry=Carry(settings.context_mode, settings.carry_rule, catalog))
    background = Background(worker, dispatcher, sink)
    if listens:
        background.listener = Listener(engine.url, background.wake)
    return background

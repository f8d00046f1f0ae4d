"""Batching of concurrent requests: callers queue up and a flusher hands everything queued to
one handler call. Group commit (one transaction for many writes) and pipelined cache reads
(one Redis round trip for many reads) both use it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from . import metrics

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Any]], Awaitable[Sequence[Any]]]


class Batcher:
    def __init__(self, handler: Handler, max_batch: int = 256, flushers: int = 1, name: str = "batch"):
        self._handler = handler
        self._size = metrics.BATCH_SIZE.labels(name)  # observed once per batch
        self._seconds = metrics.BATCH_SECONDS.labels(name)
        self._max = max_batch
        self._flushers = flushers
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._run()) for _ in range(self._flushers)]

    async def submit(self, item: Any) -> Any:
        """Resolve with the handler's result for `item`, or raise its exception."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, fut))
        return await fut

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            start = time.perf_counter()
            try:
                results = await self._handler([item for item, _ in batch])
            except Exception as e:  # the whole batch failed: every caller hears why
                log.warning("batch of %d failed: %r", len(batch), e)
                results = [e] * len(batch)
            self._seconds.observe(time.perf_counter() - start)
            self._size.observe(len(batch))
            for (_, fut), r in zip(batch, results):
                if fut.done():  # the caller went away; the write itself still happened
                    continue
                if isinstance(r, BaseException):
                    fut.set_exception(r)
                else:
                    fut.set_result(r)
            for _ in batch:
                self._queue.task_done()

    async def close(self) -> None:
        """Finish what was queued, then stop."""
        await self._queue.join()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

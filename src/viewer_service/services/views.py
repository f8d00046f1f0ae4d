"""View use cases: start, update, end (through group commit) and read (cache first)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from .. import metrics
from ..adapters.cache.base import ScopeCache
from ..adapters.db import dirty, repairs, views as repo
from ..adapters.db.engine import is_unavailable
from ..adapters.db.transaction import Transactions, translate
from ..batching import Batcher
from ..clock import now_ms
from ..domain.scope import Scope
from ..domain.views import COMPLETED, ContentView, End, StateUpdate, ViewEntry, ViewOp, apply
from ..errors import DomainError

log = logging.getLogger(__name__)

REFORGET_SECONDS = 2.0
MIN_TS = 946_684_800_000  # 2000-01-01: anything earlier is seconds sent as milliseconds


_HIT, _MISS, _BYPASS = (metrics.CACHE_READS.labels(r) for r in ("hit", "miss", "bypass"))


class ViewService:
    def __init__(self, engine: AsyncEngine, cache: ScopeCache, *, max_skew_ms: int,
                 max_batch: int = 256, flushers: int = 1, clock: Callable[[], int] = now_ms,
                 repair_interval: float = 1.0, carry=None, on_queued: Callable[[], None] | None = None):
        self.engine = engine
        self.carry = carry  # services/carry.py: a write that completes a content carries it at once
        self.tx = Transactions(engine, "views")
        self.reader = self.tx.reader
        self.on_queued = on_queued  # told when a write queued aggregation work (bootstrap.py)
        self.cache = cache
        self.clock = clock
        self.max_skew_ms = max_skew_ms
        self._writes = Batcher(self._write_batch, max_batch, flushers, name="views")
        self._repair_interval = repair_interval
        self._repair_task: asyncio.Task | None = None
        self._pending_repairs: set[Scope] = set()  # when even the database could not record them
        self._cache_failures = 0  # with _recording: tells the repair loop a failure is still being recorded
        self._recording = 0
        self._later: set[asyncio.Task] = set()

    async def start(self) -> None:
        self._closing = asyncio.Event()
        self._writes.start()
        self._repair_task = asyncio.create_task(self._repair_loop())

    async def close(self) -> None:
        for t in list(self._later):
            t.cancel()
        await asyncio.gather(*self._later, return_exceptions=True)
        await self._writes.close()
        if self._repair_task:
            self._closing.set()
            await asyncio.gather(self._repair_task, return_exceptions=True)

    # -- writes ---------------------------------------------------------------

    def check_ts(self, ts: int | None, field: str = "request.ts") -> int:
        now = self.clock()
        if ts is None:
            return now
        if ts > now + self.max_skew_ms:
            raise DomainError("the client time is in the future beyond the allowed clock skew", field)
        if ts < MIN_TS:
            raise DomainError("the client time must be epoch milliseconds after 2000-01-01", field)
        return ts

    async def write(self, op: ViewOp) -> ContentView:
        row = await self._writes.submit(op)
        if self.on_queued is not None and _ends(op):
            self.on_queued()
        return row

    async def _write_batch(self, ops: Sequence[ViewOp]) -> list:
        try:
            results, touched = await self._commit(ops)
        except Exception as e:
            if len(ops) == 1 or not isinstance(e, DBAPIError) or is_unavailable(e):
                raise translate(e) from e
            # One bad write must not sink the others: isolate it.
            results, touched = [], {}
            for op in ops:
                try:
                    r, t = await self._commit([op])
                    results += r
                    touched.update(t)
                except Exception as e1:
                    results.append(translate(e1))
        await self._cache_put(list(touched.values()))
        return results

    def _commit(self, ops: Sequence[ViewOp]):
        return self.tx.write(lambda conn: self._commit_once(conn, ops), translated=False)

    async def _commit_once(self, conn, ops: Sequence[ViewOp]):
        now = self.clock()
        results: list = []
        touched: dict = {}
        rows = await repo.lock_rows(conn, (op.key for op in ops))
        existing = set(rows)
        missing = {op.key for op in ops} - existing
        if missing:  # a content whose row was archived: the new view starts from what was kept
            rows.update({k: a.live() for k, a in (await repo.archived_rows(conn, missing)).items()})
        was_done = {k for k, v in rows.items() if v.status == COMPLETED}
        ended = []
        for op in ops:
            try:
                new = apply(rows.get(op.key), op, now)
            except DomainError as e:
                results.append(e)
                continue
            rows[op.key] = touched[op.key] = new
            results.append(new)
            if _ends(op):
                ended.append(op.key.scope)
        await repo.insert_rows(conn, [v for k, v in touched.items() if k not in existing])
        await repo.update_rows(conn, [v for k, v in touched.items() if k in existing])
        completed = [v for k, v in touched.items() if v.status == COMPLETED and k not in was_done]
        carried = await self.carry.on_completed(conn, completed) if completed and self.carry else []
        touched.update((v.key, v) for v in carried)  # the cache gets them in the write's round trip
        # Same transaction as the status change: no acknowledged end goes unaggregated.
        await dirty.mark(conn, ended + [v.key.scope for v in carried], now)
        return results, touched

    async def publish(self, rows: list[ContentView]) -> None:
        """Put rows another use case committed (assessments, carried progress) into the cache."""
        await self._cache_put(rows)

    async def forget(self, scopes: list[Scope]) -> None:
        """Drop scopes whose rows were deleted (an erase, a move) from the cache. The caller
        recorded them as repairs in its transaction: until dropped, no process trusts the cache
        for them. A fill that read the database just before the delete may land just after it,
        so they are dropped once more a little later."""
        if not scopes:
            return
        if await self.cache.invalidate(scopes):
            try:
                async with self.engine.begin() as conn:
                    await repairs.remove(conn, scopes)
            except Exception as e:  # noqa: BLE001 - the repair loop removes them later
                log.warning("could not clear cache repairs: %r", e)
        else:
            self.cache.degraded = True  # the repair loop drops them when the cache is back
        task = asyncio.create_task(self._forget_later(scopes))
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def _forget_later(self, scopes: list[Scope]) -> None:
        await asyncio.sleep(REFORGET_SECONDS)
        if not await self.cache.invalidate(scopes):
            self.cache.degraded = True

    async def _cache_put(self, rows: list[ContentView]) -> None:
        if not rows:
            return
        ok = await self.cache.put([(v.key.scope, v.key.content_id, v.version, ViewEntry.of(v)) for v in rows])
        if not ok:
            await self._needs_repair({v.key.scope for v in rows})

    async def _needs_repair(self, scopes: set[Scope]) -> None:
        # The cache may now hold entries older than the database: stop trusting it until
        # those scopes are dropped from it. The marks are durable so any process can repair.
        self.cache.degraded = True
        self._cache_failures += 1
        self._recording += 1
        try:
            async with self.engine.begin() as conn:
                await repairs.add(conn, scopes, self.clock())
        except Exception as e:  # noqa: BLE001 - the write is committed; keep serving
            log.error("could not record cache repair for %d scopes: %r", len(scopes), e)
            self._pending_repairs |= scopes
        finally:
            self._recording -= 1

    async def repair(self) -> bool:
        """Drop possibly stale scopes from the cache. True when nothing is left to repair."""
        quiet = (self._cache_failures, self._recording == 0)
        try:
            async with self.reader.connect() as conn:
                scopes = set(await repairs.pending(conn))
        except Exception as e:  # noqa: BLE001
            log.warning("cannot read cache repairs: %r", e)
            return False
        scopes |= self._pending_repairs
        if not scopes:
            # A failure recorded while we looked may not be in the table yet.
            if quiet == (self._cache_failures, True):
                self.cache.degraded = False
            return True
        self.cache.degraded = True
        try:
            await self.cache.ping()
        except Exception:  # noqa: BLE001 - still down
            return False
        if not await self.cache.invalidate(sorted(scopes, key=lambda s: (s.user_id, s.collection_id, s.context_id))):
            return False
        self._pending_repairs -= scopes
        async with self.engine.begin() as conn:
            await repairs.remove(conn, scopes)
        return False  # look again next round before trusting the cache

    async def _repair_loop(self) -> None:
        while not self._closing.is_set():
            try:  # sleep, but stop at once on close (never cancelled mid-transaction)
                await asyncio.wait_for(self._closing.wait(), self._repair_interval)
                return
            except TimeoutError:
                pass
            try:
                await self.repair()
            except Exception as e:  # noqa: BLE001
                log.warning("cache repair round failed: %r", e)
            metrics.CACHE_DEGRADED.set(1 if self.cache.degraded else 0)

    # -- reads ----------------------------------------------------------------

    async def read(self, scope: Scope, content_ids: list[str] | None) -> dict[str, ViewEntry]:
        """Entries of `scope` for `content_ids` (all when None). Reflects every acknowledged write."""
        if not self.cache.degraded:
            hit = await self.cache.read(scope, content_ids)
            if hit is not None:
                _HIT.inc()
                return hit
            _MISS.inc()
        else:
            _BYPASS.inc()
        rows = await self.tx.read(lambda conn: repo.load_scope(conn, scope))
        entries = {v.key.content_id: ViewEntry.of(v) for v in rows}
        if not self.cache.degraded:
            await self.cache.put([(scope, v.key.content_id, v.version, entries[v.key.content_id]) for v in rows],
                                 full=scope)
        if content_ids is None:
            return entries
        return {cid: entries[cid] for cid in content_ids if cid in entries}


def _ends(op: ViewOp) -> bool:
    """An op that marks its scope for the aggregation worker."""
    return isinstance(op, End) or (isinstance(op, StateUpdate) and op.status >= COMPLETED)

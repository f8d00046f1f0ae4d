"""The aggregation use case: recompute the collection progress of every dirty scope.

A view end marks its scope dirty in the same transaction (services/views.py). Workers claim
dirty scopes with a lease, recompute each from the raw rows under a per-scope lock, write the
aggregates and the enrolment, queue completion events in that same transaction, and only then
drop the mark. Any number of workers may run; one that dies leaves leases that expire."""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from .. import metrics
from ..adapters.db import collections as collections_repo, dirty, enrolments as enrol_repo, outbox, progress as repo
from ..adapters.db.locks import lock_scope
from ..adapters.db.views import load_scope
from ..clock import now_ms
from ..domain.assessments import score_aggregates
from ..domain.carry import COPY_MODES, CarryRule, not_before
from ..domain.events import completion_events
from ..domain.progress import compute, merge_stored
from ..loops import PollingLoop
from .carry import Carry
from .catalog import Catalog

log = logging.getLogger(__name__)
_DONE, _DEFERRED, _FAILED = (metrics.RECOMPUTES.labels(r) for r in ("done", "deferred", "failed"))


class AggregationWorker(PollingLoop):
    name = "aggregation"

    def __init__(self, engine: AsyncEngine, catalog: Catalog, *, worker_id: str | None = None,
                 batch: int = 100, lease_ms: int = 30_000, poll_seconds: float = 0.2,
                 retry_ms: int = 60_000, clock: Callable[[], int] = now_ms,
                 on_events: Callable[[], None] | None = None, carry: Carry | None = None, views=None):
        super().__init__(engine, worker_id=worker_id or f"{os.getpid()}-{uuid.uuid4().hex[:8]}", batch=batch,
                         lease_ms=lease_ms, poll_seconds=poll_seconds, clock=clock)
        self.catalog = catalog
        self.retry_ms = retry_ms
        self.on_events = on_events
        self.carry = carry or Carry("strict", CarryRule(), catalog, clock)
        self.views = views  # publishes carried rows to the cache
        self.recomputed = 0  # counters, for tests and the benchmark
        self.deferred = 0

    async def run_once(self) -> int:
        """Claim one batch and recompute it. Returns the number of scopes claimed."""
        async with self.engine.begin() as conn:
            claims = await dirty.claim(conn, self.worker_id, self.clock(), self.lease_ms, self.batch)
        emitted = False
        for c in claims:
            start, deferred = time.perf_counter(), self.deferred
            try:
                emitted |= await self._recompute(c)
                if self.deferred == deferred:
                    _DONE.inc()
                    if c.marked_at is not None:
                        metrics.COMPLETION_LAG.observe(max(0.0, (self.clock() - c.marked_at) / 1000))
                else:
                    _DEFERRED.inc()
            except Exception as e:  # noqa: BLE001 - one scope must never stop the others
                _FAILED.inc()
                log.warning("recompute of %s failed (attempt %d): %r", c.scope, c.attempts, e)
                backoff = min(self.retry_ms, 100 * 2 ** min(c.attempts, 20))
                try:
                    async with self.engine.begin() as conn:
                        await dirty.defer(conn, c, self.worker_id, self.clock() + backoff)
                except Exception:  # noqa: BLE001 - the lease expires and another round retries
                    pass
            metrics.RECOMPUTE_SECONDS.observe(time.perf_counter() - start)
        if emitted and self.on_events:
            self.on_events()
        return len(claims)

    async def _recompute(self, c: dirty.Claim) -> bool:
        """Recompute one scope; True when it queued events."""
        s = c.scope
        collection = await self.catalog.get(s.collection_id)
        now = self.clock()
        async with self.engine.begin() as conn:
            await lock_scope(conn, s)
            # The catalog cache may lag a PUT made in another process by a few seconds: a row
            # made due by that PUT must not be computed against the older copy.
            stored_at = await collections_repo.updated_at(conn, s.collection_id)
            if stored_at is not None and (collection is None or collection.updated_at != stored_at):
                collection = await collections_repo.load(conn, s.collection_id)
            e = await enrol_repo.load_enrolment(conn, s, for_update=True)
            # The learner's active enrolments with their contexts' rules: read once when the pull
            # needs them, and shared with the dependents (which read them only if they need them).
            ens = await enrol_repo.enrolments_with_contexts(conn, s.user_id) \
                if not self.carry.mode.shared_by_contexts and collection is not None and e is not None and e.active else None
            carried = await self._pull(conn, s, collection, ens)
            # Read under the lock: a later recompute reads at least what this one read.
            rows = await self.carry.rows_for(conn, s, collection)
            own = await load_scope(conn, s) if self.carry.mode.shared_by_contexts else rows  # stored in `s` itself
            if c.propagate:
                await dirty.mark(conn, await self.carry.dependents(conn, s, own, ens), now, propagate=False)
            p = compute(collection, {v.key.content_id: v for v in rows})
            if p.collection is None:
                if own and all(v.key.content_id == s.collection_id for v in own):
                    await dirty.finish(conn, c, self.worker_id, now)  # a content on its own: nothing to aggregate
                    return False
                # Unknown collection: kept, retried later, and at once when it is registered.
                await dirty.defer(conn, c, self.worker_id, now + self.retry_ms)
                self.deferred += 1
                return False
            stored = await repo.load_course_agg(conn, s)
            root = merge_stored(p.collection, stored.status if stored else None,
                                stored.completed_on if stored else None)
            await repo.replace_aggs(conn, s, p, root, now, score_aggregates(rows))
            events = []
            if e is not None and e.active:
                mine = merge_stored(root, e.status, e.completed_on)
                if e.completed_on is None:
                    mine = replace(mine, completed_on=not_before(mine.completed_on, e.enrolled_date,
                                                                  any(v.carried_from for v in rows)))
                await enrol_repo.update_enrolment_progress(conn, s, mine, now)
                if e.completed_on is None and mine.completed_on is not None:
                    events = completion_events(s.user_id, s.collection_id, s.context_id, mine.completed_on, now)
                    await outbox.enqueue(conn, s.user_id, events, now)
            await dirty.finish(conn, c, self.worker_id, now)
        if carried and self.views is not None:
            await self.views.publish(carried)
        self.recomputed += 1
        return bool(events)

    async def _pull(self, conn, s, collection, enrolments) -> list:
        """Copy mode: take completions made elsewhere that qualify (services/carry.py)."""
        if enrolments is None:  # not strict mode, an unknown collection, or no active enrolment
            return []
        t = await self.carry.target_of(conn, s, enrolments)
        if t is None or t.rule.mode not in COPY_MODES:
            return []
        return (await self.carry.pull(conn, t, collection, "completion", mark=False)).rows

"""Assessment use cases: submit attempts (group commit), read attempt details (docs/assessments.md).

The best attempt lives on the consumption row, written with a new version and put in the scope
cache like any view write: reads of scores are read-after-write through the same mechanism."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import assessments as repo, dirty, outbox, views as views_repo
from ..adapters.db.enrolments import active_scopes
from ..adapters.db.transaction import Transactions
from ..batching import Batcher
from ..clock import now_ms
from ..domain.assessments import (ScoredAttempt, StoredAttempt, best_attempt, cdata_attempt_id, derived_attempt_id,
                                  parse_event, replaces, score_attempt)
from ..errors import ContentNotInCollection, DomainError, InvalidEvent, TooManyEvents
from ..domain.events import cert_reissue_event
from ..domain.scope import Scope
from ..domain.views import ArchivedView, ContentView, RowKey, Start, apply, next_version
from .catalog import Catalog
from .views import MIN_TS, ViewService


@dataclass(frozen=True, slots=True)
class AttemptInput:
    key: RowKey
    attempt_id: str | None  # as the request gave it
    assessment_ts: int | None  # checked already; None: the latest event time
    events: Sequence[Any]  # raw ASSESS events
    field: str  # where the events are in the request, for error messages
    content_field: str = "request.contentId"


@dataclass(frozen=True, slots=True)
class _Scored:
    key: RowKey
    attempt: ScoredAttempt


class AssessmentService:
    def __init__(self, engine: AsyncEngine, views: ViewService, catalog: Catalog, *, max_events: int,
                 clock: Callable[[], int] = now_ms, carry=None, max_batch: int = 256, flushers: int = 1,
                 on_queued: Callable[[], None] | None = None):
        self.engine = engine
        self.tx = Transactions(engine, "assessments")
        self.on_queued = on_queued  # told when a submit queued aggregation work (bootstrap.py)
        self.carry = carry
        self._batches = Batcher(self._commit_batch, max_batch, flushers, name="assessments")
        self.views = views
        self.catalog = catalog
        self.max_events = max_events
        self.clock = clock

    # -- submit ---------------------------------------------------------------

    def _score(self, i: AttemptInput) -> _Scored:
        if not i.events:
            raise InvalidEvent("an attempt needs at least one ASSESS event", i.field)
        if len(i.events) > self.max_events:
            raise TooManyEvents(f"an attempt may hold at most {self.max_events} events", i.field)
        max_ts = self.clock() + self.views.max_skew_ms
        questions = [parse_event(e, f"{i.field}.{n}", MIN_TS, max_ts) for n, e in enumerate(i.events)]
        k = i.key
        attempt_id = (i.attempt_id or cdata_attempt_id(i.events, i.field)
                      or derived_attempt_id(k.user_id, k.collection_id, k.context_id, k.content_id, questions))
        ts = i.assessment_ts if i.assessment_ts is not None else max(q.assess_ts for q in questions)
        return _Scored(k, score_attempt(attempt_id, ts, questions))

    async def _check_leaves(self, inputs: Sequence[AttemptInput]) -> None:
        for i in inputs:
            k = i.key
            if k.collection_id == k.content_id:
                continue  # a content consumed on its own: no collection to belong to
            c = await self.catalog.get(k.collection_id)
            if c is not None and k.content_id not in c.leaf_nodes:
                raise ContentNotInCollection(
                    f"content {k.content_id!r} is not a leaf of collection {k.collection_id!r}", i.content_field)

    async def submit(self, inputs: Sequence[AttemptInput]) -> bool:
        """Validate, score and store the attempts; True when anything changed.
        Raises DomainError (nothing stored) for invalid input."""
        scored = [self._score(i) for i in inputs]
        await self._check_leaves(inputs)
        self._batches.start()
        touched = await self._batches.submit(scored)
        if touched and self.on_queued is not None:
            self.on_queued()
        return bool(touched)

    async def close(self) -> None:
        await self._batches.close()

    async def _commit_batch(self, requests: Sequence[list[_Scored]]) -> list:
        """Group commit: the submits queued meanwhile share one transaction (one fsync) and one
        cache update. Returns, per request, the rows it changed."""
        try:
            touched = await self._commit([s for r in requests for s in r])
        except DomainError:
            if len(requests) == 1:
                raise
            # One refused value must not sink the others: isolate it.
            results: list = []
            for r in requests:
                try:
                    results.append(await self._commit(r))
                except DomainError as e:
                    results.append(e)
            await self.views.publish([v for r in results if isinstance(r, list) for v in r])
            return results
        await self.views.publish(touched)
        final = {v.key: v for v in touched}
        return [[final[k] for k in dict.fromkeys(s.key for s in r) if k in final] for r in requests]

    def _commit(self, scored: Sequence[_Scored]) -> Awaitable[list[ContentView]]:
        return self.tx.write(lambda conn: self._commit_once(conn, scored))

    async def _commit_once(self, conn, scored: Sequence[_Scored]) -> list[ContentView]:
        now = self.clock()
        by_key: dict[RowKey, list[ScoredAttempt]] = {}
        for s in scored:
            by_key.setdefault(s.key, []).append(s.attempt)
        created, updated, rescored = [], [], []
        # The consumption row's lock serialises every submit for that content.
        rows = await views_repo.lock_rows(conn, by_key)
        hot = set(rows)
        # Attempts archived (docs/archive.md) still count, and their best still competes.
        archived = await views_repo.archived_rows(conn, by_key)
        rows.update({k: a.live() for k, a in archived.items() if k not in hot})
        all_stored = await repo.load_attempts_many(conn, by_key)
        inserts: list[tuple[RowKey, list[ScoredAttempt]]] = []
        for key in sorted(by_key, key=lambda k: (k.user_id, k.collection_id, k.context_id, k.content_id)):
            stored = all_stored.get(key, {})
            fresh, replaced = _decide(stored, by_key[key])
            if not fresh and not replaced:
                continue  # stale or identical: nothing changes, no attempt counted
            inserts.append((key, fresh))
            await repo.replace_attempts(conn, key, replaced, now)
            old = rows.get(key)
            new = _with_best(old, key, stored, [*fresh, *replaced], now, archived.get(key))
            (updated if key in hot else created).append(new)
            before = (old.best_score, old.best_max_score) if old is not None else (None, None)
            if before != (new.best_score, new.best_max_score):
                rescored.append(new)
        events = await self._reissue_events(conn, rescored, now)
        await repo.insert_attempts_many(conn, inserts, now)
        await views_repo.insert_rows(conn, created)
        await views_repo.update_rows(conn, updated)
        touched = [*created, *updated]
        # Same transaction: the worker recomputes the scope's aggregates with the new scores.
        await dirty.mark(conn, {v.key.scope for v in touched}, now)
        for user in {e.payload["edata"]["userIds"][0] for e in events}:
            await outbox.enqueue(conn, user, [e for e in events if e.payload["edata"]["userIds"][0] == user], now)
        return touched

    async def _reissue_events(self, conn, rescored: list[ContentView], now: int) -> list:
        """A new best score re-issues the certificates of every active enrolment that counts the row."""
        enrolled = await active_scopes(conn, {v.key.scope for v in rescored})  # one statement a batch
        events = []
        for new in rescored:
            s = new.key.scope
            targets = [s] if s in enrolled else []
            if self.carry is not None and self.carry.mode.shared_by_contexts:
                # The row counts for every enrolment that reads it (docs/modes.md).
                targets += await self.carry.dependents(conn, s, [new])
            events += [cert_reissue_event(t.user_id, t.collection_id, t.context_id, new.key.content_id,
                                          new.best_attempt_id, new.version, now) for t in targets]
        return events

    # -- read -----------------------------------------------------------------

    async def attempt_details(self, scope: Scope, content_ids: Sequence[str] | None) -> dict[str, list[dict]]:
        found = await self.tx.read(lambda conn: repo.attempt_details(conn, scope, content_ids))
        return {cid: [{"attemptId": r.attempt_id, "score": r.total_score, "max_score": r.total_max_score,
                       "grand_total": r.grand_total, "lastAttemptedOn": r.last_attempted_on} for r in rows]
                for cid, rows in found.items()}


def _decide(stored: dict[str, StoredAttempt], incoming: Sequence[ScoredAttempt]):
    """Split the request's attempts into new and replacing ones (Sunbird's strictly-newer rule);
    `stored` is updated to what will be stored."""
    fresh: dict[str, ScoredAttempt] = {}
    replaced: dict[str, ScoredAttempt] = {}
    for a in incoming:
        if not replaces(stored.get(a.attempt_id), a.assessment_ts):
            continue
        if a.attempt_id in fresh or a.attempt_id not in stored:
            fresh[a.attempt_id] = a
        else:
            replaced[a.attempt_id] = a
        stored[a.attempt_id] = StoredAttempt(a.attempt_id, a.assessment_ts, a.total_score, a.total_max_score)
    return list(fresh.values()), list(replaced.values())


def archived_attempt_count(stored: dict[str, StoredAttempt], archived: ArchivedView) -> int:
    """Hot and archived attempts of one content, each attempt once: an archived attempt submitted
    again is hot too. Ids the kept row does not name (archived before they were kept) count apart."""
    ids = set(archived.attempt_ids) or ({archived.best_attempt_id} if archived.best_attempt_id else set())
    return len(stored.keys() | ids) + max(archived.attempts - len(ids), 0)


def _with_best(old: ContentView | None, key: RowKey, stored: dict[str, StoredAttempt],
               written: list[ScoredAttempt], now: int, archived: ArchivedView | None = None) -> ContentView:
    """The consumption row after the attempts: created as a started view when missing."""
    ts = max(a.assessment_ts for a in written)
    if old is None:
        base = apply(None, Start(key, ts), now)
    else:
        last = ts if old.last_access_time is None else max(old.last_access_time, ts)
        base = replace(old, last_access_time=last, last_updated_time=now,
                       version=next_version(old.version, now * 1000))
    candidates, count = list(stored.values()), len(stored)
    if archived is not None and archived.attempts:
        count = archived_attempt_count(stored, archived)
        if archived.best_score is not None and archived.best_attempt_id not in stored:
            candidates.append(StoredAttempt(archived.best_attempt_id or "", archived.last_access_time or 0,
                                            archived.best_score, archived.best_max_score or 0.0))
    best = best_attempt(candidates)
    return replace(base, best_score=best.total_score, best_max_score=best.total_max_score,
                   best_attempt_id=best.attempt_id, attempts=count)

"""Per-learner summaries: one per enrolment, or per collection scope consumed without one.

Computed at read time from the scope's live content statuses (the cache: read-after-write)
with the same rules the worker stores; completion stays as the worker recorded it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import enrolments as enrol_repo, progress as repo, views as views_repo
from ..adapters.db.transaction import Transactions
from ..domain.carry import not_before
from ..domain.progress import compute, merge_stored
from ..domain.scope import ContextMode, Scope
from ..domain.views import ViewEntry
from .catalog import Catalog
from .reads import counted
from .views import ViewService


def _score_carried(e: ViewEntry) -> bool:
    """The best score is the carried attempt's (not one made here since)."""
    c = e.carried_from
    return bool(c) and c.get("attemptId") is not None and c.get("attemptId") == e.attempt_id


def _collection_meta(c) -> dict:
    if c is None:
        return {}
    doc = c.document
    return {"identifier": c.collection_id, "name": doc.get("name"), "logo": doc.get("appIcon"),
            "leafNodesCount": c.leaf_nodes_count, "description": doc.get("description")}


class SummaryService:
    def __init__(self, engine: AsyncEngine, views: ViewService, catalog: Catalog,
                 mode: ContextMode | str = ContextMode.STRICT):
        self.tx = Transactions(engine)
        self.views = views
        self.catalog = catalog
        self.mode = ContextMode(mode)

    async def _rows(self, user_id: str, s: Scope | None):
        async def read(conn):
            enrolments = {e.scope: e for e in await enrol_repo.list_enrolments(conn, user_id, s)}
            return enrolments, await repo.load_aggs(conn, user_id, s), await views_repo.consumed_scopes(conn, user_id, s)

        return await self.tx.read(read)

    async def iter_summaries(self, user_id: str, s: Scope | None = None) -> AsyncIterator[dict]:
        """Summaries of a learner (all, or of one scope), newest enrolment first."""
        enrolments, aggs, consumed = await self._rows(user_id, s)
        scopes = set(enrolments) | set(consumed) | {k for k, a in aggs.items() if a.content_status}
        if self.mode is ContextMode.COLLECTION:
            # The progress at (collection, collection) is the enrolments' own: one summary each.
            enrolled = {k.collection_id for k in enrolments}
            scopes = {k for k in scopes if k in enrolments or k.collection_id not in enrolled}

        def order(k: Scope):
            e = enrolments.get(k)
            date = e.enrolled_date if e is not None else consumed.get(k) or 0
            return (-date, k.collection_id, k.context_id)

        for k in sorted(scopes, key=order):
            yield await self._summary(k, enrolments.get(k), aggs.get(k), consumed.get(k))

    async def list(self, user_id: str) -> list[dict]:
        return [s async for s in self.iter_summaries(user_id)]

    async def read(self, s: Scope) -> dict | None:
        async for summary in self.iter_summaries(s.user_id, s):
            return summary
        return None

    async def _summary(self, s: Scope, enrolment, agg, first_access: int | None) -> dict:
        collection = await self.catalog.get(s.collection_id)
        entries = {cid: e for cid, (_, e) in (await counted(self.views, self.catalog, self.mode, s)).items()}
        p = compute(collection, entries)
        status, progress, completed_on = 0, 0, None
        if p.collection is not None:
            a = p.collection
            if agg is not None:
                a = merge_stored(a, agg.status, agg.completed_on)
            if enrolment is not None:
                a = merge_stored(a, enrolment.status, enrolment.completed_on)
                if enrolment.completed_on is None:
                    a = replace(a, completed_on=not_before(a.completed_on, enrolment.enrolled_date,
                                                                any(e.carried_from for e in entries.values())))
            status, progress, completed_on = a.status, a.progress, a.completed_on
        elif agg is not None:  # the catalog forgot it: what the worker last stored
            status, progress, completed_on = agg.status, agg.progress, agg.completed_on
        elif entries:
            status = 1
        return {
            "userId": s.user_id,
            "collectionId": s.collection_id,
            "contextId": s.context_id,
            "enrolledDate": enrolment.enrolled_date if enrolment is not None else first_access,
            "enrolled": enrolment is not None,
            "active": enrolment.active if enrolment is not None else True,
            "contentStatus": p.content_status,
            # Each unit's progress, live like contentStatus (reports show them as bars).
            "unitProgress": {u: a.progress for u, a in p.units.items() if u != s.collection_id},
            # From the live entries, like contentStatus: read-after-write.
            "assessmentStatus": {cid: {"score": e.score, "max_score": e.max_score, "carried": _score_carried(e)}
                                 for cid, e in entries.items() if e.score is not None},
            # Per content: was its status earned in this scope or carried in (docs/modes.md)?
            "contentOrigin": {cid: "carried" if e.carried_from else "earned" for cid, e in entries.items()},
            "carriedFrom": {cid: e.carried_from for cid, e in entries.items() if e.carried_from},
            "movedTo": enrolment.moved_to if enrolment is not None else None,
            "collection": _collection_meta(collection),
            "issuedCertificates": list(enrolment.issued_certificates) if enrolment is not None else [],
            "completedOn": completed_on,
            "progress": progress,
            "status": status,
        }

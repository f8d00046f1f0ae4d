"""lms-service's content state and enrolment list use cases, on our data (docs/sunbird.md).

Writes go through the same paths as /v1/view/* and /v1/assessment/submit (group commit, the
cache, dirty marks), so both API families read each other's writes at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import dirty, enrolments as enrol_repo
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..domain.enrolments import Context
from ..domain.scope import ContextMode, Scope
from ..domain.sunbird import (batch_problem, completed_count, format_date, format_day as _day, last_read, list_order,
                              list_status)
from ..domain.views import COMPLETED, RowKey, StateUpdate
from ..errors import SunbirdError
from .assessments import AssessmentService, AttemptInput
from .catalog import Catalog
from .reads import counted
from .summaries import SummaryService
from .views import ViewService

SCORE_ATTEMPTS_LIMIT = 25  # lms-service's assessment.attempts.limit
# Known batches are kept this long: every state update checks its batches, and a database read
# per request measured 76 req/s instead of ~300 (pool exhaustion). A PUT in this process drops
# the entry at once; another process's PUT is seen within this time. Unknown ids are not kept.
CONTEXT_TTL_SECONDS = 5.0
CONTEXT_CACHE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class ContentState:
    """One item of `request.contents`, checked."""
    user_id: str
    content_id: str
    course_id: str
    batch_id: str
    status: int
    progress: int | None
    details: Any
    access_ts: int | None
    completed_ts: int | None


@dataclass(frozen=True, slots=True)
class AssessmentState:
    """One item of `request.assessments`, checked."""
    user_id: str
    content_id: str
    course_id: str
    batch_id: str
    attempt_id: str
    assessment_ts: int
    events: list
    field: str


class SunbirdService:
    def __init__(self, engine: AsyncEngine, views: ViewService, assessments: AssessmentService,
                 summaries: SummaryService, catalog: Catalog, mode: ContextMode | str,
                 clock: Callable[[], int] = now_ms, on_queued: Callable[[], None] | None = None):
        self.engine = engine
        self.tx = Transactions(engine)
        self.on_queued = on_queued  # told when a sync queued aggregation work (bootstrap.py)
        self.views = views
        self.assessments = assessments
        self.summaries = summaries
        self.catalog = catalog
        self.mode = ContextMode(mode)
        self.clock = clock
        self._known: dict[str, tuple[float, Context | None]] = {}  # context id -> (expiry, context)

    def _key(self, user: str, content: str, course: str, batch: str) -> RowKey:
        s = self.mode.resolve(user, content, course, batch)
        return RowKey(s.user_id, s.collection_id, s.context_id, content)

    def forget_context(self, context_id: str) -> None:
        self._known.pop(context_id, None)

    async def _contexts(self, ids: set[str]) -> dict:
        now = time.monotonic()
        found = {i: hit[1] for i in ids if (hit := self._known.get(i)) is not None and hit[0] > now}
        missing = ids - found.keys()
        if not missing:
            return found
        loaded = await self.tx.read(lambda conn: enrol_repo.load_contexts(conn, missing))
        if len(self._known) + len(loaded) > CONTEXT_CACHE_MAX:
            self._known.clear()
        self._known.update({i: (now + CONTEXT_TTL_SECONDS, r) for i, r in loaded.items()})
        return {**found, **loaded}

    def _client_time(self, ts: int | None, now: int) -> int:
        # A device clock ahead of ours is common on phones: its time is taken as ours rather than
        # refusing an offline sync (the /v1 API answers 400 instead).
        return now if ts is None or ts > now + self.views.max_skew_ms else ts

    # -- update -----------------------------------------------------------------

    async def update(self, contents: Sequence[ContentState], assessments: Sequence[AssessmentState]) -> dict:
        """Write what the batches allow. Returns lms-service's result map. Raises DomainError
        (nothing written) for invalid assessment events."""
        now = self.clock()
        contexts = await self._contexts({c.batch_id for c in contents} | {a.batch_id for a in assessments})
        rejected: dict[str, list[str]] = {}

        def allowed(batch: str, course: str) -> bool:
            problem = batch_problem(contexts.get(batch), course, now)
            if problem is not None and batch not in rejected.setdefault(problem, []):
                rejected[problem].append(batch)
            return problem is None

        attempts = [a for a in assessments if allowed(a.batch_id, a.course_id)]
        written = [c for c in contents if allowed(c.batch_id, c.course_id)]
        ops = [StateUpdate(self._key(c.user_id, c.content_id, c.course_id, c.batch_id),
                           self._client_time(c.access_ts, now), c.status, c.progress, c.details,
                           self._client_time(c.completed_ts, now) if c.completed_ts is not None else None)
               for c in written]
        # An assessment completes its content, as in lms-service.
        ops += [StateUpdate(self._key(a.user_id, a.content_id, a.course_id, a.batch_id), now, COMPLETED)
                for a in attempts]
        inputs = [AttemptInput(self._key(a.user_id, a.content_id, a.course_id, a.batch_id), a.attempt_id,
                               a.assessment_ts, a.events, a.field, f"{a.field.rsplit('.', 1)[0]}.contentId")
                  for a in attempts if a.events]
        if inputs:
            await self.assessments.submit(inputs)  # first: it may still refuse the events
        await asyncio.gather(*(self.views.write(op) for op in ops))
        result: dict[str, Any] = {a.batch_id: "SUCCESS" for a in attempts}
        result.update({c.content_id: "SUCCESS" for c in written})
        result.update(rejected)
        return result

    async def sync_enrolment(self, user: str, course: str, batch: str) -> None:
        """lms-service's enrolment sync: recompute the enrolment's progress from its contents."""
        s = Scope(user, course, batch)
        now = self.clock()

        async def mark(conn):
            row = await enrol_repo.load_enrolment(conn, s)
            if row is not None:
                await dirty.mark(conn, [s], now)
            return row

        row = await self.tx.write(mark)
        if row is None:
            raise SunbirdError("INVALID_REQUESTED_DATA",
                               f"No Enrolment found for userId: {user}, batchId: {batch}, courseId: {course}",
                               "request")
        if self.on_queued is not None:
            self.on_queued()

    # -- read -------------------------------------------------------------------

    async def read(self, user: str, course: str, batch: str, content_ids: list[str] | None,
                   with_score: bool) -> list[dict]:
        entries = await counted(self.views, self.catalog, self.mode, Scope(user, course, batch),
                                list(dict.fromkeys(content_ids)) if content_ids else None)
        ids = [cid for cid in (dict.fromkeys(content_ids) if content_ids else sorted(entries)) if cid in entries]
        scores: dict[str, list] = {}
        if with_score and ids:
            by_scope: dict[Scope, list[str]] = {}
            for cid in ids:
                by_scope.setdefault(entries[cid][0], []).append(cid)
            parts = await asyncio.gather(*(self.assessments.attempt_details(s, cids) for s, cids in by_scope.items()))
            scores = {cid: d for part in parts for cid, d in part.items()}
        out = []
        for cid in ids:
            e = entries[cid][1]
            item = {
                "contentId": cid, "courseId": course, "batchId": batch, "collectionId": course,
                "status": e.status, "progress": e.progress,
                "lastAccessTime": format_date(e.last_access_time),
                "lastCompletedTime": format_date(e.last_completed_time),
                "progressdetails": e.progress_details,
            }
            if with_score:
                newest = sorted(scores.get(cid, []), key=lambda a: a["lastAttemptedOn"], reverse=True)
                item["score"] = [{"attemptId": a["attemptId"], "lastAttemptedOn": format_date(a["lastAttemptedOn"]),
                                  "totalScore": a["score"], "totalMaxScore": a["max_score"]}
                                 for a in newest[:SCORE_ATTEMPTS_LIMIT]]
            out.append(item)
        return out

    # -- enrolment list -----------------------------------------------------------

    async def courses(self, user: str, course_ids: list[str] | None, batch_fields: list[str] | None) -> list[dict]:
        """The learner's active enrolments, live: progress as of the last acknowledged write."""
        wanted = set(course_ids) if course_ids else None
        courses = []
        async for s in self.summaries.iter_summaries(user):
            if not s["enrolled"] or not s["active"] or (wanted is not None and s["collectionId"] not in wanted):
                continue
            collection = await self.catalog.get(s["collectionId"])
            if collection is None:
                continue  # lms-service lists only courses its search finds
            scope = Scope(user, s["collectionId"], s["contextId"])
            entries = await counted(self.views, self.catalog, self.mode, scope)
            read_id, read_status, read_time = last_read({cid: e for cid, (_, e) in entries.items()})
            status, percentage = list_status(s["status"], s["progress"])
            doc = {k: v for k, v in collection.document.items() if k != "children"}
            courses.append({
                "userId": user, "courseId": s["collectionId"], "batchId": s["contextId"],
                "contentId": s["collectionId"], "collectionId": s["collectionId"],
                "active": True, "enrolledDate": format_date(s["enrolledDate"]), "_enrolled": s["enrolledDate"],
                "status": status,
                "progress": completed_count(collection.required_leaf_nodes, s["contentStatus"]),
                "completionPercentage": percentage, "completedOn": s["completedOn"],
                "contentStatus": s["contentStatus"],
                "issuedCertificates": s["issuedCertificates"], "certificates": [],
                "lastReadContentId": read_id, "lastReadContentStatus": read_status,
                "lastContentAccessTime": read_time,
                "courseName": doc.get("name"), "description": doc.get("description"),
                "leafNodesCount": collection.leaf_nodes_count, "courseLogoUrl": doc.get("appIcon"),
                "content": {**doc, "identifier": s["collectionId"], "leafNodesCount": collection.leaf_nodes_count},
            })
        if batch_fields is not None:
            contexts = await self._contexts({c["batchId"] for c in courses})
            for c in courses:
                ctx = contexts.get(c["batchId"])
                if ctx is None:
                    c["batch"] = {}
                    continue
                doc = {**ctx.document, "startDate": _day(ctx.start_date), "endDate": _day(ctx.end_date)}
                c["batch"] = {**{f: doc.get(f) for f in batch_fields if f in doc},
                              "batchId": c["batchId"], "identifier": c["batchId"]}
        ordered = list_order(courses)
        for c in ordered:
            del c["_enrolled"]
        return ordered

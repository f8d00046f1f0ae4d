"""Course-wide reports for course staff: a context's roster (paged, or streamed whole as CSV or
JSON), its stats, and one learner's report for the dashboard (docs/reports.md).

Status, progress and completion are the enrolment's, as the aggregation worker stores them (so a
completion shows once the worker has stored it); scores are the consumption rows' best attempts,
stored by the assessment write itself."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import reports as repo
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..domain.reports import (RosterFilter, STATUSES, assessment_summary, decode_cursor, encode_cursor, histogram,
                              node_names, per_day)
from ..errors import ContextNotFound
from .catalog import Catalog
from .downloads import csv_cells, iso_time
from .summaries import SummaryService

STREAM_PAGE = 1000  # enrolments per query when streaming a whole roster: bounds memory
ROSTER_CSV_COLUMNS = ("userId", "collectionId", "contextId", "enrolledDate", "enrolledDateIso", "active", "status",
                      "progress", "completedOn", "completedOnIso", "lastAccessTime", "lastAccessTimeIso",
                      "certificates", "unitProgress", "assessments")
RECENT = 10


def _json_text(v) -> str:
    return orjson.dumps(v).decode()


class ReportService:
    def __init__(self, engine: AsyncEngine, summaries: SummaryService, catalog: Catalog):
        self.tx = Transactions(engine)
        self.summaries = summaries
        self.catalog = catalog

    def _read(self, fn, *args):
        return self.tx.read(lambda conn: fn(conn, *args))

    async def _require_context(self, conn, context_id: str) -> None:
        if not await repo.context_known(conn, context_id):
            raise ContextNotFound("no such context: not registered and no enrolment in it", "contextId")

    # -- roster ---------------------------------------------------------------------------

    async def _page(self, conn, context_id: str, f: RosterFilter, after, limit: int) -> tuple[list[dict], bool]:
        rows = await repo.roster_page(conn, context_id, f, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        users = list(dict.fromkeys(r.user_id for r in rows))
        units = await repo.unit_progress(conn, context_id, users)
        scores = await repo.best_scores(conn, context_id, users)
        access = await repo.last_access(conn, context_id, users)
        out = []
        for r in rows:
            k = (r.user_id, r.collection_id)
            out.append({
                "userId": r.user_id, "collectionId": r.collection_id, "contextId": context_id,
                "enrolledDate": r.enrolled_date, "active": r.active, "status": r.status, "progress": r.progress,
                "completedOn": r.completed_on, "lastAccessTime": access.get(k),
                "certificates": len(r.issued_certificates or []),
                "unitProgress": units.get(k, {}), "assessments": scores.get(k, {}),
            })
        return out, more

    async def roster(self, context_id: str, f: RosterFilter, cursor: str | None, limit: int) -> dict:
        after = decode_cursor(cursor)

        async def go(conn):
            if after is None:
                await self._require_context(conn, context_id)
            return await self._page(conn, context_id, f, after, limit)

        entries, more = await self._read(go)
        last = entries[-1] if entries else None
        return {"contextId": context_id, "count": len(entries), "enrolments": entries,
                "nextCursor": encode_cursor(last["collectionId"], last["userId"]) if more and last else None}

    async def check_context(self, context_id: str) -> None:
        async def go(conn):
            await self._require_context(conn, context_id)
        await self._read(go)

    async def iter_roster(self, context_id: str, f: RosterFilter) -> AsyncIterator[dict]:
        """Every enrolment matching `f`, a page per read transaction (constant memory)."""
        after = None
        while True:
            entries, more = await self._read(self._page, context_id, f, after, STREAM_PAGE)
            for e in entries:
                yield e
            if not more or not entries:
                return
            after = (entries[-1]["collectionId"], entries[-1]["userId"])

    async def roster_csv(self, context_id: str, f: RosterFilter) -> AsyncIterator[bytes]:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(ROSTER_CSV_COLUMNS)
        n = 0
        async for e in self.iter_roster(context_id, f):
            w.writerow(csv_cells((
                e["userId"], e["collectionId"], e["contextId"], e["enrolledDate"], iso_time(e["enrolledDate"]),
                e["active"], e["status"], e["progress"], e["completedOn"], iso_time(e["completedOn"]),
                e["lastAccessTime"], iso_time(e["lastAccessTime"]), e["certificates"],
                _json_text(e["unitProgress"]), _json_text(e["assessments"]))))
            n += 1
            if n % 200 == 0:
                yield buf.getvalue().encode()
                buf.seek(0)
                buf.truncate()
        yield buf.getvalue().encode()

    async def roster_json(self, context_id: str, f: RosterFilter) -> AsyncIterator[bytes]:
        yield b'{"contextId":%s,"generatedAt":%d,"enrolments":[' % (orjson.dumps(context_id), now_ms())
        sep, chunk = b"", []
        async for e in self.iter_roster(context_id, f):
            chunk.append(sep + orjson.dumps(e))
            sep = b","
            if len(chunk) >= 200:
                yield b"".join(chunk)
                chunk = []
        chunk.append(b"]}")
        yield b"".join(chunk)

    # -- stats ----------------------------------------------------------------------------

    async def stats(self, context_id: str, collection_id: str | None, pass_percent: float,
                    offset_minutes: int) -> dict:
        async def go(conn):
            breakdown = await repo.enrolment_breakdown(conn, context_id, collection_id, offset_minutes * 60_000)
            offered = await repo.offered_collections(conn, context_id)
            if offered is None and not breakdown:
                raise ContextNotFound("no such context: not registered and no enrolment in it", "contextId")
            completed = sum(n for _, active, _, _, day, n in breakdown if active and day is not None)
            median = await repo.median_time_to_complete(conn, context_id, collection_id, completed)
            scores = await repo.score_distribution(conn, context_id, collection_id)
            return breakdown, offered or [], completed, median, scores

        breakdown, offered, completed, median, scores = await self._read(go)
        by_status = {str(s): 0 for s in STATUSES}
        by_progress: dict[int, int] = {}
        days: dict[int, int] = {}
        inactive = 0
        for _, active, status, progress, day, n in breakdown:
            if not active:
                inactive += n
                continue
            by_status[str(status)] = by_status.get(str(status), 0) + n
            by_progress[progress] = by_progress.get(progress, 0) + n
            if day is not None:
                days[int(day)] = days.get(int(day), 0) + n
        collections = [collection_id] if collection_id else list(dict.fromkeys([*offered,
                                                                                 *(r[0] for r in breakdown)]))
        names: dict[str, str] = {}
        meta = {}
        for cid in collections:
            c = await self.catalog.get(cid)
            doc = c.document if c is not None else {}
            names.update(node_names(doc))
            meta[cid] = {"name": doc.get("name"),
                         "units": [{"unitId": u, "name": names.get(u)} for u in (c.units if c else {}) if u != cid]}
        assessments = assessment_summary(scores, pass_percent)
        for a in assessments:
            a["name"] = names.get(a["contentId"])
        return {
            "contextId": context_id,
            "collectionId": collection_id,
            "generatedAt": now_ms(),
            "enrolled": sum(by_status.values()),
            "unenrolled": inactive,
            "byStatus": by_status,
            "progressHistogram": [{"bucket": b, "count": n} for b, n in histogram(by_progress).items()],
            "completed": completed,
            "utcOffsetMinutes": offset_minutes,
            "completionsPerDay": per_day(days),
            "medianTimeToCompleteMs": median,
            "passPercent": pass_percent,
            "assessments": assessments,
            "collections": meta,
        }

    # -- contexts and learners --------------------------------------------------------------

    async def contexts(self, prefix: str, limit: int) -> list[dict]:
        rows = await self._read(repo.list_contexts, prefix, limit)
        return [{"contextId": r.context_id, "type": r.type, "collectionIds": r.collection_ids,
                 "startDate": r.start_date, "endDate": r.end_date} for r in rows]

    async def learner(self, user_id: str) -> dict:
        """What the learner's dashboard shows: every enrolment with its units, and recent completions."""
        summaries = await self.summaries.list(user_id)
        recent = await self._read(repo.recent_completions, user_id, RECENT)
        names: dict[str, str] = {}
        for s in summaries:
            c = await self.catalog.get(s["collectionId"])
            doc = c.document if c is not None else {}
            names.update(node_names(doc))
            status = s.get("contentStatus") or {}
            s["units"] = [{"unitId": u, "name": names.get(u), "progress": s.get("unitProgress", {}).get(u, 0),
                           "contents": [{"contentId": cid, "name": names.get(cid), "status": status.get(cid, 0)}
                                        for cid in leaves]}
                          for u, leaves in (c.units if c else {}).items() if u != s["collectionId"]]
            s["contents"] = [{"contentId": cid, "name": names.get(cid), "status": status.get(cid, 0)}
                             for cid in (c.leaf_nodes if c else tuple(status))]
        return {"userId": user_id, "enrolments": summaries,
                "recent": [{"collectionId": r.collection_id, "contextId": r.context_id, "contentId": r.content_id,
                            "name": names.get(r.content_id), "completedOn": r.last_completed_time} for r in recent]}

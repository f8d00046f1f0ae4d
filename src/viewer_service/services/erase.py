"""Erase a learner's data, all of it or one enrolment's scope (docs/erase.md)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import outbox
from ..adapters.db.progress import where_scope
from ..adapters.db import archive as archive_repo
from ..adapters.db.tables import (archived_consumption, assessment_aggregator, cache_repair, enrolment, erasure_log,
                                  scope_dirty, user_activity_agg, user_content_consumption)
from ..adapters.db.transaction import Transactions
from ..adapters.db.views import add_repairs
from ..clock import now_ms
from ..domain.scope import Scope
from .views import ViewService

log = logging.getLogger(__name__)

# Tables keyed by learner scope, erased row for row.
SCOPED_TABLES = [user_content_consumption, assessment_aggregator, user_activity_agg, enrolment, scope_dirty,
                 cache_repair, archived_consumption]


class EraseService:
    def __init__(self, engine: AsyncEngine, views: ViewService, downloads=None, clock: Callable[[], int] = now_ms):
        from .archive import Archiver

        self.engine = engine
        self.tx = Transactions(engine)
        self.views = views
        self.downloads = downloads
        self.clock = clock
        self.archive = Archiver(engine, clock=clock)

    async def erase(self, user_id: str, scope: Scope | None, requested_by: str | None) -> dict:
        """Remove the learner's rows (all scopes, or `scope`), queued events and download files,
        and the cache entries; record what was removed. Idempotent."""
        now = self.clock()
        counts: dict[str, int] = {}

        async def run(conn):
            paths: list[str] = []
            scopes = await self._scopes(conn, user_id, scope)
            # The chunks whose files hold the learner's archived rows: marked in this transaction,
            # so that a crash before they are rewritten leaves them to the next compaction.
            archived = await archive_repo.archived_of_users(conn, [user_id], scope)
            await archive_repo.mark_dead(conn, {r.chunk_id for r in archived} |
                                         {c for r in archived for c in r.attempt_chunks}, now)
            for t in SCOPED_TABLES:
                cond = t.c.user_id == user_id if scope is None else where_scope(t, scope)
                counts[str(t.name)] = (await conn.execute(sa.delete(t).where(cond))).rowcount
            counts["event_outbox"] = await outbox.erase(
                conn, user_id, *((scope.collection_id, scope.context_id) if scope else ()))
            if self.downloads is not None:
                # Every download holds all the learner's summaries, so any erase removes them.
                paths = await self.downloads.erase_files(conn, user_id)
            counts["download_file"] = len(paths)
            # Until the cache has dropped these scopes, no process may trust it for them.
            await add_repairs(conn, scopes, now)
            await conn.execute(sa.insert(erasure_log).values(
                user_id=user_id, erased_at=now, erase_id=uuid.uuid4().hex,
                scope=None if scope is None else {"collectionId": scope.collection_id,
                                                  "contextId": scope.context_id},
                counts=counts, requested_by=requested_by))
            return scopes, archived, paths

        scopes, archived, paths = await self.tx.write(run)
        if paths:
            await self.downloads.remove_files(paths)
        await self.views.forget(scopes)
        if archived:
            try:
                counts["archive_file_rows"] = await self.archive.compact()
            except Exception as e:  # noqa: BLE001 - the chunks stay marked: the next erase or archive run retries
                log.error("erase of %s: could not rewrite the archive files yet: %r", user_id, e)
                counts["archive_file_rows"] = None
        return counts

    async def _scopes(self, conn, user_id: str, scope: Scope | None) -> list[Scope]:
        if scope is not None:
            return [scope]
        found: set[Scope] = set()
        for t in (user_content_consumption, user_activity_agg, enrolment, archived_consumption):
            q = sa.select(t.c.collection_id, t.c.context_id).where(t.c.user_id == user_id).distinct()
            found |= {Scope(user_id, r[0], r[1]) for r in await conn.execute(q)}
        return sorted(found, key=lambda s: (s.collection_id, s.context_id))

"""Erase a learner's data, all of it or one enrolment's scope (docs/erase.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import archive as archive_repo, erase as repo, outbox, repairs
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..domain.scope import Scope
from .views import ViewService

log = logging.getLogger(__name__)

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
            scopes = [scope] if scope is not None else await repo.scopes_of(conn, user_id)
            # The chunks whose files hold the learner's archived rows: marked in this transaction,
            # so that a crash before they are rewritten leaves them to the next compaction.
            archived = await archive_repo.archived_of_users(conn, [user_id], scope)
            await archive_repo.mark_dead(conn, {r.chunk_id for r in archived} |
                                         {c for r in archived for c in r.attempt_chunks}, now)
            counts.update(await repo.delete_rows(conn, user_id, scope))
            counts["event_outbox"] = await outbox.erase(
                conn, user_id, *((scope.collection_id, scope.context_id) if scope else ()))
            if self.downloads is not None:
                # Every download holds all the learner's summaries, so any erase removes them.
                paths = await self.downloads.erase_files(conn, user_id)
            counts["download_file"] = len(paths)
            # Until the cache has dropped these scopes, no process may trust it for them.
            await repairs.add(conn, scopes, now)
            await repo.log(conn, user_id, scope, counts, requested_by, now)
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

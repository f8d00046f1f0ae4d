"""Contexts, enrolments and issued certificates (docs/progress.md)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import enrolments as repo
from ..adapters.db.progress import load_enrolment
from ..adapters.db.views import mark_dirty
from ..clock import now_ms
from ..domain.errors import DomainError
from ..domain.scope import Scope
from ..domain.views import COMPLETED
from .views import _translate


class NotFound(DomainError):
    status = 404
    code = "NOT_FOUND"


class ContextNotFound(NotFound):
    code = "CONTEXT_NOT_FOUND"


class EnrolmentNotFound(NotFound):
    code = "ENROLMENT_NOT_FOUND"


class EnrolmentService:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], int] = now_ms):
        self.engine = engine
        self.clock = clock

    async def _tx(self, fn):
        try:
            async with self.engine.begin() as conn:
                return await fn(conn)
        except Exception as e:
            raise _translate(e) from e

    async def put_context(self, context_id: str, body: dict) -> dict:
        if body.get("startDate") is not None and body.get("endDate") is not None \
                and body["endDate"] < body["startDate"]:
            raise DomainError("endDate is before startDate", "request.endDate")
        values = {
            "context_id": context_id, "type": body["type"], "collection_ids": body["collectionIds"],
            "start_date": body.get("startDate"), "end_date": body.get("endDate"), "document": body,
            "updated_at": self.clock(),
        }
        await self._tx(lambda conn: repo.upsert_context(conn, values))
        return values

    async def get_context(self, context_id: str):
        return await self._tx(lambda conn: repo.load_context(conn, context_id))

    async def enrol(self, s: Scope, enrolled_date: int | None) -> tuple[object, bool]:
        """Enrol (idempotent: an active enrolment is left as it is; an inactive one is made
        active again, keeping its date and progress). Returns the enrolment and whether it changed."""
        now = self.clock()

        async def run(conn):
            await self._check_context(conn, s)
            created = await repo.insert_enrolment(conn, s, enrolled_date or now, now)
            row = await load_enrolment(conn, s, for_update=True)
            changed = created or not row.active
            if not row.active:
                await repo.set_active(conn, s, True, now)
            if changed:
                # The worker fills the enrolment's progress (and completes it if the learner
                # already finished the collection in this scope).
                await mark_dirty(conn, [s], now)
            return await load_enrolment(conn, s), changed

        return await self._tx(run)

    async def _check_context(self, conn, s: Scope) -> None:
        if s.context_id == s.collection_id:
            return  # the collection's own context: nothing to register
        c = await repo.load_context(conn, s.context_id)
        if c is None:
            raise ContextNotFound(f"context {s.context_id!r} is not registered", "request.contextId")
        if s.collection_id not in c.collection_ids:
            raise DomainError(f"context {s.context_id!r} does not offer collection {s.collection_id!r}",
                              "request.collectionId")

    async def unenrol(self, s: Scope):
        now = self.clock()

        async def run(conn):
            row = await load_enrolment(conn, s, for_update=True)
            if row is None:
                raise EnrolmentNotFound("there is no such enrolment", "request")
            if row.active and row.status == COMPLETED:
                raise DomainError("a completed enrolment cannot be left", "request")
            await repo.set_active(conn, s, False, now)
            return await load_enrolment(conn, s)

        return await self._tx(run)

    async def record_certificate(self, s: Scope, cert: dict):
        """Add an issued certificate to an enrolment, replacing one with the same id."""
        now = self.clock()

        async def run(conn):
            row = await load_enrolment(conn, s, for_update=True)
            if row is None:
                raise EnrolmentNotFound("there is no such enrolment", "request")
            certs = [c for c in row.issued_certificates if c.get("id") != cert["id"]] + [cert]
            await repo.set_certificates(conn, s, certs, now)
            return await load_enrolment(conn, s)

        return await self._tx(run)

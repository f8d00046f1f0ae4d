"""Contexts, enrolments and issued certificates (docs/progress.md)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import dirty, enrolments as repo, repairs
from ..adapters.db.locks import lock_scope
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..domain.carry import rule_for
from ..domain.enrolments import Context, Enrolment
from ..domain.scope import Scope
from ..domain.views import COMPLETED
from ..errors import ContextNotFound, DomainError, EnrolmentNotFound
from .carry import Carry, Outcome
from .views import ViewService

log = logging.getLogger(__name__)


class EnrolmentService:
    def __init__(self, engine: AsyncEngine, views: ViewService | None = None, carry: Carry | None = None,
                 catalog=None, clock: Callable[[], int] = now_ms, on_queued: Callable[[], None] | None = None):
        self.engine = engine
        self.tx = Transactions(engine)  # a lost race with a view write runs again
        self.on_queued = on_queued  # told when an enrolment queued aggregation work (bootstrap.py)
        self.views = views
        self.carry = carry
        self.catalog = catalog
        self.clock = clock

    async def put_context(self, context_id: str, body: dict) -> dict:
        if body.get("startDate") is not None and body.get("endDate") is not None \
                and body["endDate"] < body["startDate"]:
            raise DomainError("endDate is before startDate", "request.endDate")
        values = {
            "context_id": context_id, "type": body["type"], "collection_ids": body["collectionIds"],
            "start_date": body.get("startDate"), "end_date": body.get("endDate"), "document": body,
            "updated_at": self.clock(),
        }
        await self.tx.write(lambda conn: repo.upsert_context(conn, values))
        return values

    async def get_context(self, context_id: str) -> Context | None:
        return await self.tx.write(lambda conn: repo.load_context(conn, context_id))

    async def enrol(self, s: Scope, enrolled_date: int | None) -> tuple[Enrolment, bool, Outcome]:
        """Enrol (idempotent: an active enrolment is left as it is; an inactive one is made
        active again, keeping its date and progress), then carry progress in (docs/modes.md).
        Returns the enrolment, whether it changed, and what was carried."""
        now = self.clock()
        collection = await self._collection(s)

        async def run(conn):
            # The scope lock first, in the worker's order (scope, then enrolment row): an enrol
            # and a recompute of the same scope queue instead of deadlocking.
            await lock_scope(conn, s)
            await self._check_context(conn, s)
            created = await repo.insert_enrolment(conn, s, enrolled_date or now, now)
            row = await repo.load_enrolment(conn, s, for_update=True)
            changed = created or not row.active
            carried = Outcome()
            if not row.active:
                await repo.set_active(conn, s, True, now)
            if changed:
                if self.carry is not None:
                    carried = await self.carry.on_enrol(conn, s, collection)
                    # Until the cache has dropped the emptied scopes, no process may trust it for them.
                    await repairs.add(conn, carried.emptied, now)
                # The worker fills the enrolment's progress (and completes it if the learner
                # already finished the collection in this scope).
                await dirty.mark(conn, [s], now)
            return await repo.load_enrolment(conn, s), changed, carried

        row, changed, carried = await self.tx.write(run)
        if changed and self.on_queued is not None:
            self.on_queued()
        if self.views is not None:
            await self.views.publish(carried.rows)  # read-after-write: reads show the carried rows
            await self.views.forget(carried.emptied)
        return row, changed, carried

    async def _collection(self, s: Scope):
        """The collection, when a carry-forward rule applies to `s` (read before the transaction:
        the catalog may fetch it remotely). None otherwise: enrolments without carry-forward
        never wait on the catalog."""
        if self.catalog is None or self.carry is None or self.carry.mode.shared_by_contexts:
            return None
        try:
            doc = None
            if s.context_id != s.collection_id:
                async with self.views.reader.connect() as conn:
                    c = await repo.load_context(conn, s.context_id)
                doc = c.document if c is not None else None
            if rule_for(self.carry.default, doc).mode == "none":
                return None
            return await self.catalog.get(s.collection_id)
        except Exception as e:  # noqa: BLE001 - the worker carries progress once it knows the collection
            log.warning("enrol: collection %r not available for carry-forward now: %r", s.collection_id, e)
            return None

    async def _check_context(self, conn, s: Scope) -> None:
        if s.context_id == s.collection_id:
            return  # the collection's own context: nothing to register
        c = await repo.load_context(conn, s.context_id)
        if c is None:
            raise ContextNotFound(f"context {s.context_id!r} is not registered", "request.contextId")
        if s.collection_id not in c.collection_ids:
            raise DomainError(f"context {s.context_id!r} does not offer collection {s.collection_id!r}",
                              "request.collectionId")

    async def unenrol(self, s: Scope) -> Enrolment:
        now = self.clock()

        async def run(conn):
            row = await repo.load_enrolment(conn, s, for_update=True)
            if row is None:
                raise EnrolmentNotFound("there is no such enrolment", "request")
            if row.active and row.status == COMPLETED:
                raise DomainError("a completed enrolment cannot be left", "request")
            await repo.set_active(conn, s, False, now)
            return await repo.load_enrolment(conn, s)

        return await self.tx.write(run)

    async def record_certificate(self, s: Scope, cert: dict) -> Enrolment:
        """Add an issued certificate to an enrolment, replacing one with the same id."""
        now = self.clock()

        async def run(conn):
            row = await repo.load_enrolment(conn, s, for_update=True)
            if row is None:
                raise EnrolmentNotFound("there is no such enrolment", "request")
            certs = [c for c in row.issued_certificates if c.get("id") != cert["id"]] + [cert]
            await repo.set_certificates(conn, s, certs, now)
            return await repo.load_enrolment(conn, s)

        return await self.tx.write(run)

"""Repository for contexts (table context), enrolments and their certificates (table enrolment)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.enrolments import Context, Enrolment
from ...domain.progress import ActivityProgress
from ...domain.scope import Scope
from .sql import insert, where_scope
from .tables import context as ctx, enrolment as en

# Positional: the tables' columns are declared in the dataclasses' field order.
assert [c.name for c in en.columns] == list(Enrolment.__dataclass_fields__)
assert [c.name for c in ctx.columns] == list(Context.__dataclass_fields__)


async def upsert_context(conn: AsyncConnection, values: dict) -> None:
    stmt = insert(conn, ctx).values(values)
    cols = [c for c in values if c != "context_id"]
    await conn.execute(stmt.on_conflict_do_update(index_elements=[ctx.c.context_id],
                                                  set_={c: stmt.excluded[c] for c in cols}))


async def load_context(conn: AsyncConnection, context_id: str) -> Context | None:
    r = (await conn.execute(sa.select(ctx).where(ctx.c.context_id == context_id))).first()
    return None if r is None else Context(*r)


async def load_contexts(conn: AsyncConnection, context_ids: set[str]) -> dict[str, Context]:
    rows = await conn.execute(sa.select(ctx).where(ctx.c.context_id.in_(sorted(context_ids))))
    return {r.context_id: Context(*r) for r in rows}


async def insert_enrolment(conn: AsyncConnection, s: Scope, enrolled_date: int, now_ms: int) -> bool:
    """Create an active enrolment unless one exists. True if created."""
    stmt = insert(conn, en).values(
        user_id=s.user_id, collection_id=s.collection_id, context_id=s.context_id, enrolled_date=enrolled_date,
        active=True, issued_certificates=[], status=0, progress=0, completed_on=None, updated_at=now_ms,
    ).on_conflict_do_nothing().returning(en.c.user_id)
    return (await conn.execute(stmt)).first() is not None


async def set_active(conn: AsyncConnection, s: Scope, active: bool, now_ms: int) -> None:
    values = {"active": active, "updated_at": now_ms}
    if active:
        values["moved_to"] = None  # re-joined: live again (the moved rows still say where they came from)
    await conn.execute(sa.update(en).where(where_scope(en, s)).values(values))


async def set_certificates(conn: AsyncConnection, s: Scope, certificates: list, now_ms: int) -> None:
    await conn.execute(sa.update(en).where(where_scope(en, s))
                       .values(issued_certificates=certificates, updated_at=now_ms))


async def list_enrolments(conn: AsyncConnection, user_id: str, s: Scope | None = None) -> list[Enrolment]:
    q = sa.select(en).where(en.c.user_id == user_id if s is None else where_scope(en, s))
    return [Enrolment(*r) for r in await conn.execute(q)]


async def load_enrolment(conn: AsyncConnection, s: Scope, *, for_update: bool = False) -> Enrolment | None:
    q = sa.select(en).where(where_scope(en, s))
    if for_update and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    r = (await conn.execute(q)).first()
    return None if r is None else Enrolment(*r)


async def active_scopes(conn: AsyncConnection, scopes: set[Scope]) -> set[Scope]:
    """Which of `scopes` have an active enrolment, in one statement (a batch of submits)."""
    if not scopes:
        return set()
    key = (en.c.user_id, en.c.collection_id, en.c.context_id)
    # user_id IN (...) lets SQLite search the primary key (see views.lock_rows).
    q = sa.select(*key).where(en.c.active.is_(True), en.c.user_id.in_({s.user_id for s in scopes}),
                              sa.tuple_(*key).in_([(s.user_id, s.collection_id, s.context_id) for s in scopes]))
    return {Scope(*r) for r in await conn.execute(q)}


async def update_enrolment_progress(conn: AsyncConnection, s: Scope, a: ActivityProgress, now_ms: int) -> None:
    await conn.execute(sa.update(en).where(where_scope(en, s)).values(
        status=a.status, progress=a.progress, completed_on=a.completed_on, updated_at=now_ms))


async def set_moved(conn: AsyncConnection, s: Scope, moved_to: dict, now_ms: int) -> None:
    await conn.execute(sa.update(en).where(where_scope(en, s)).values(
        active=False, moved_to=moved_to, status=0, progress=0, completed_on=None, updated_at=now_ms))


# Built once: the worker runs it for every recompute of an enrolled scope.
_ACTIVE = (sa.select(en, ctx.c.start_date, ctx.c.end_date, ctx.c.document.label("context_document"))
           .select_from(en.outerjoin(ctx, ctx.c.context_id == en.c.context_id))
           .where(en.c.active.is_(True)))
_ENROLMENTS = _ACTIVE.where(en.c.user_id == sa.bindparam("user_id"))


async def enrolments_with_contexts(conn: AsyncConnection, user_id: str):
    """The learner's active enrolments, each with its context's dates and document (None for a
    collection's own context, which is not registered)."""
    return (await conn.execute(_ENROLMENTS, {"user_id": user_id})).all()


_ENROLMENTS_OF = _ACTIVE.where(en.c.user_id.in_(sa.bindparam("user_ids", expanding=True)))


async def enrolments_of(conn: AsyncConnection, user_ids: list[str]):
    """enrolments_with_contexts for several learners in one query (a write batch)."""
    if len(user_ids) == 1:
        return await enrolments_with_contexts(conn, user_ids[0])
    return (await conn.execute(_ENROLMENTS_OF, {"user_ids": user_ids})).all()

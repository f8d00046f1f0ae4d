"""Repository for contexts, enrolments and their certificates."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from .progress import where_scope
from .tables import context as ctx, enrolment as en
from .views import _insert


async def upsert_context(conn: AsyncConnection, values: dict) -> None:
    stmt = _insert(conn, ctx).values(values)
    cols = [c for c in values if c != "context_id"]
    await conn.execute(stmt.on_conflict_do_update(index_elements=[ctx.c.context_id],
                                                  set_={c: stmt.excluded[c] for c in cols}))


async def load_context(conn: AsyncConnection, context_id: str):
    return (await conn.execute(sa.select(ctx).where(ctx.c.context_id == context_id))).first()


async def insert_enrolment(conn: AsyncConnection, s: Scope, enrolled_date: int, now_ms: int) -> bool:
    """Create an active enrolment unless one exists. True if created."""
    stmt = _insert(conn, en).values(
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


async def list_enrolments(conn: AsyncConnection, user_id: str, s: Scope | None = None):
    q = sa.select(en).where(en.c.user_id == user_id if s is None else where_scope(en, s))
    return (await conn.execute(q)).all()

"""Queries of a context-mode migration (services/modes.py, `viewer-service db migrate-mode`):
every learner's rows and attempts re-keyed in one transaction, the aggregates dropped to be
recomputed. Like erase, it rewrites several owners' tables at once, on purpose."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from ...domain.views import ContentView
from .tables import (assessment_aggregator as aa, enrolment as en, user_activity_agg as agg,
                     user_content_consumption as ucc)
from .views import insert_rows, to_row


async def has_rows(conn: AsyncConnection) -> bool:
    return (await conn.execute(sa.select(ucc.c.user_id).limit(1))).first() is not None


async def learners(conn: AsyncConnection) -> list[str]:
    return [r[0] for r in await conn.execute(sa.select(ucc.c.user_id).distinct())]


async def learner_rows(conn: AsyncConnection, user_id: str) -> list[ContentView]:
    return [to_row(r) for r in await conn.execute(sa.select(ucc).where(ucc.c.user_id == user_id))]


async def replace_learner_rows(conn: AsyncConnection, user_id: str, rows: list[ContentView]) -> None:
    await conn.execute(sa.delete(ucc).where(ucc.c.user_id == user_id))
    await insert_rows(conn, rows)


async def learner_attempts(conn: AsyncConnection, user_id: str) -> list[dict]:
    return [dict(r._mapping) for r in await conn.execute(sa.select(aa).where(aa.c.user_id == user_id))]


async def replace_learner_attempts(conn: AsyncConnection, user_id: str, attempts: list[dict]) -> None:
    await conn.execute(sa.delete(aa).where(aa.c.user_id == user_id))
    await conn.execute(sa.insert(aa), attempts)


async def enrolled_scopes(conn: AsyncConnection) -> list[Scope]:
    return [Scope(*r) for r in await conn.execute(sa.select(en.c.user_id, en.c.collection_id, en.c.context_id))]


async def holding_scopes(conn: AsyncConnection) -> list[Scope]:
    """Scopes that hold consumption rows."""
    return [Scope(*r) for r in await conn.execute(
        sa.select(ucc.c.user_id, ucc.c.collection_id, ucc.c.context_id).distinct())]


async def drop_aggregates(conn: AsyncConnection) -> None:
    await conn.execute(sa.delete(agg))

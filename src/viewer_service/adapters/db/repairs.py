"""Repository for cache repairs (table cache_repair): scopes the shared cache may hold stale,
recorded durably so that any process drops them from the cache before trusting it again."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from .sql import insert, where_scope
from .tables import cache_repair as r


async def add(conn: AsyncConnection, scopes: Iterable[Scope], now_ms: int) -> None:
    params = [{"user_id": s.user_id, "collection_id": s.collection_id, "context_id": s.context_id,
               "created_at": now_ms} for s in set(scopes)]
    if params:
        await conn.execute(insert(conn, r).on_conflict_do_nothing(), params)


async def pending(conn: AsyncConnection, limit: int = 1000) -> list[Scope]:
    return [Scope(*row) for row in await conn.execute(
        sa.select(r.c.user_id, r.c.collection_id, r.c.context_id).limit(limit))]


async def remove(conn: AsyncConnection, scopes: Iterable[Scope]) -> None:
    for s in scopes:
        await conn.execute(sa.delete(r).where(where_scope(r, s)))

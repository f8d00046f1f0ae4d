"""Repository for instance settings (table instance_setting): facts about the stored data that
every process must agree on, such as the context mode it was written in."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .sql import insert
from .tables import instance_setting as s


async def get(conn: AsyncConnection, name: str) -> str | None:
    return (await conn.execute(sa.select(s.c.value).where(s.c.name == name))).scalar()


async def put(conn: AsyncConnection, name: str, value: str, now_ms: int) -> None:
    stmt = insert(conn, s).values(name=name, value=value, updated_at=now_ms)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[s.c.name], set_={"value": value, "updated_at": now_ms}))

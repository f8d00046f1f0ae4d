"""Repository for generated summary downloads (the files themselves are on disk)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import download_file as t


async def insert(conn: AsyncConnection, user_id: str, token: str, fmt: str, path: str,
                 created_at: int, expires_at: int) -> None:
    await conn.execute(sa.insert(t).values(user_id=user_id, token=token, format=fmt, path=path,
                                           created_at=created_at, expires_at=expires_at))


async def find(conn: AsyncConnection, user_id: str, token: str):
    """The row (format, path, expires_at), or None."""
    q = sa.select(t.c.format, t.c.path, t.c.expires_at).where(t.c.user_id == user_id, t.c.token == token)
    return (await conn.execute(q)).first()


async def delete(conn: AsyncConnection, user_id: str, token: str) -> None:
    await conn.execute(sa.delete(t).where(t.c.user_id == user_id, t.c.token == token))


async def erase_files(conn: AsyncConnection, user_id: str) -> list[str]:
    """Delete the learner's rows; the paths of their files, to remove once the caller commits."""
    rows = await conn.execute(sa.delete(t).where(t.c.user_id == user_id).returning(t.c.path))
    return [r.path for r in rows]


async def delete_expired(conn: AsyncConnection, now_ms: int, limit: int) -> list[str]:
    """Delete up to `limit` rows expired at `now_ms`; the paths of those this call deleted."""
    keys = (await conn.execute(sa.select(t.c.user_id, t.c.token).where(t.c.expires_at <= now_ms)
                               .order_by(t.c.expires_at).limit(limit))).all()
    if not keys:
        return []
    # RETURNING: a concurrent purger that took a row first is not counted twice.
    rows = await conn.execute(sa.delete(t).where(sa.tuple_(t.c.user_id, t.c.token).in_([tuple(k) for k in keys]))
                              .returning(t.c.path))
    return [r.path for r in rows]

"""SQL shapes the repositories share: the dialect's INSERT (with ON CONFLICT), a learner scope's
WHERE, and claiming due rows of a work queue with a lease."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope


def insert(conn: AsyncConnection, table: sa.Table):
    """INSERT that knows ON CONFLICT in this connection's dialect."""
    return (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)


def where_scope(t: sa.Table, s: Scope):
    return sa.and_(t.c.user_id == s.user_id, t.c.collection_id == s.collection_id, t.c.context_id == s.context_id)


async def claim_due(conn: AsyncConnection, table: sa.Table, keys: Sequence[sa.Column], returning: Sequence,
                    worker_id: str, now_ms: int, lease_ms: int, limit: int) -> sa.CursorResult:
    """Claim up to `limit` rows of a work queue (columns due_at, claimed_by, attempts) due by
    `now_ms`, for `lease_ms`. Concurrent claimants skip each other's rows (PostgreSQL SKIP LOCKED;
    SQLite write transactions are serial). An expired lease is due again."""
    due = sa.select(*keys).where(table.c.due_at <= now_ms).order_by(table.c.due_at).limit(limit)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return await conn.execute(
        sa.update(table).where(sa.tuple_(*keys).in_(due))
        .values(claimed_by=worker_id, due_at=now_ms + lease_ms, attempts=table.c.attempts + 1)
        .returning(*returning))

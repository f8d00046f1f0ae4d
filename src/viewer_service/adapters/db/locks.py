"""Transaction-scoped advisory locks (PostgreSQL; SQLite write transactions are serial anyway)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope


async def lock_scope(conn: AsyncConnection, s: Scope) -> None:
    """Serialise recomputes of one scope (PostgreSQL; SQLite write transactions are serial)."""
    if conn.dialect.name == "postgresql":
        key = f"{len(s.user_id)}:{s.user_id}:{len(s.collection_id)}:{s.collection_id}:{s.context_id}"
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


async def lock_learners(conn: AsyncConnection, user_ids: list[str], *, shared: bool) -> None:
    """Serialise an enrolment's pull (exclusive) with the writes completing the learner's contents
    (shared, so completions never wait on each other). PostgreSQL; SQLite writes are serial."""
    if conn.dialect.name != "postgresql" or not user_ids:
        return
    fn = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    keys = sa.func.unnest(sa.bindparam("keys", type_=ARRAY(sa.Text))).table_valued("k").render_derived("u")
    await conn.execute(sa.select(sa.func.count(fn(sa.func.hashtextextended(keys.c.k, 0)))),
                       {"keys": [f"learner:{u}" for u in sorted(set(user_ids))]})

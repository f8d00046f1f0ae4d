"""Repository for erasure: removing a learner's rows from every table keyed by learner scope, and
the log of what was removed (table erasure_log). The one module that deletes across owners, by
design: an erase must reach every table in one transaction (docs/erase.md)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from .sql import where_scope
from .tables import (archived_consumption, assessment_aggregator, cache_repair, enrolment, erasure_log, scope_dirty,
                     user_activity_agg, user_content_consumption)

# Tables keyed by learner scope, erased row for row.
SCOPED_TABLES = [user_content_consumption, assessment_aggregator, user_activity_agg, enrolment, scope_dirty,
                 cache_repair, archived_consumption]


async def scopes_of(conn: AsyncConnection, user_id: str) -> list[Scope]:
    """Every scope the learner has rows in."""
    found: set[Scope] = set()
    for t in (user_content_consumption, user_activity_agg, enrolment, archived_consumption):
        q = sa.select(t.c.collection_id, t.c.context_id).where(t.c.user_id == user_id).distinct()
        found |= {Scope(user_id, r[0], r[1]) for r in await conn.execute(q)}
    return sorted(found, key=lambda s: (s.collection_id, s.context_id))


async def delete_rows(conn: AsyncConnection, user_id: str, scope: Scope | None) -> dict[str, int]:
    """Delete the learner's rows (all, or one scope's) from every scoped table; counts by table."""
    counts = {}
    for t in SCOPED_TABLES:
        cond = t.c.user_id == user_id if scope is None else where_scope(t, scope)
        counts[str(t.name)] = (await conn.execute(sa.delete(t).where(cond))).rowcount
    return counts


async def log(conn: AsyncConnection, user_id: str, scope: Scope | None, counts: dict, requested_by: str | None,
              now_ms: int) -> None:
    await conn.execute(sa.insert(erasure_log).values(
        user_id=user_id, erased_at=now_ms, erase_id=uuid.uuid4().hex,
        scope=None if scope is None else {"collectionId": scope.collection_id, "contextId": scope.context_id},
        counts=counts, requested_by=requested_by))

"""Repository for collection progress: the aggregates (table user_activity_agg) and the enrolment
progress the worker writes."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.progress import ActivityProgress, ScopeProgress
from ...domain.scope import Scope
from .sql import where_scope
from .tables import user_activity_agg as agg

COURSE, UNIT = "Course", "Unit"  # activity types; "Course" as Sunbird's certificate criteria read it


# -- aggregates -----------------------------------------------------------------

async def load_course_agg(conn: AsyncConnection, s: Scope):
    return (await conn.execute(sa.select(agg).where(where_scope(agg, s), agg.c.activity_type == COURSE,
                                                    agg.c.activity_id == s.collection_id))).first()


def _agg_row(s: Scope, kind: str, activity_id: str, a: ActivityProgress, status_map: dict, now_ms: int,
             scores: dict | None = None) -> dict:
    return {
        "user_id": s.user_id, "collection_id": s.collection_id, "context_id": s.context_id,
        "activity_type": kind, "activity_id": activity_id,
        "aggregates": {"completedCount": a.completed_count, "leafNodesCount": a.required_count, **(scores or {})},
        "content_status": status_map,
        "agg_last_updated": {"completedCount": now_ms, **{k: now_ms for k in scores or {}}},
        "progress": a.progress, "status": a.status, "completed_on": a.completed_on, "updated_at": now_ms,
    }


async def replace_aggs(conn: AsyncConnection, s: Scope, p: ScopeProgress, root: ActivityProgress,
                       now_ms: int, scores: dict | None = None) -> None:
    """The scope's aggregates, replaced whole: recomputed from the raw rows, never patched. Progress
    and `scores` (score:<cid>, ...) come from the same rows, so neither can wipe the other."""
    rows = [_agg_row(s, COURSE, s.collection_id, root, p.content_status, now_ms, scores)]
    for unit, a in p.units.items():
        if unit != s.collection_id:
            rows.append(_agg_row(s, UNIT, unit, a, {}, now_ms))
    await conn.execute(sa.delete(agg).where(where_scope(agg, s)))
    await conn.execute(sa.insert(agg), rows)


async def load_aggs(conn: AsyncConnection, user_id: str, s: Scope | None = None) -> dict[Scope, object]:
    rows = await conn.execute(sa.select(agg).where(agg.c.user_id == user_id if s is None else where_scope(agg, s),
                                                   agg.c.activity_type == COURSE))
    return {Scope(r.user_id, r.collection_id, r.context_id): r for r in rows}


async def delete_aggs(conn: AsyncConnection, s: Scope) -> None:
    await conn.execute(sa.delete(agg).where(where_scope(agg, s)))

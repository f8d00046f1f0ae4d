"""Repository for course-wide reports: a context's enrolments (ix_enrolment_context) and its
scored consumption rows (ix_ucc_scored). Read-only."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.reports import DAY_MS, RosterFilter
from .progress import UNIT
from .tables import context as ctx, enrolment as en, user_activity_agg as agg, user_content_consumption as ucc


def _where(context_id: str, f: RosterFilter) -> list:
    cond = [en.c.context_id == context_id]
    if f.collection_id is not None:
        cond.append(en.c.collection_id == f.collection_id)
    if f.status is not None:
        cond.append(en.c.status == f.status)
    if f.completed_from is not None:
        cond.append(en.c.completed_on >= f.completed_from)
    if f.completed_to is not None:
        cond.append(en.c.completed_on < f.completed_to)
    if f.active is not None:
        cond.append(en.c.active == f.active)
    if f.search:
        escaped = f.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        cond.append(en.c.user_id.like(escaped + "%", escape="\\"))
    return cond


async def roster_page(conn: AsyncConnection, context_id: str, f: RosterFilter, after: tuple[str, str] | None,
                      limit: int) -> list:
    """Enrolments in (collection_id, user_id) order, after the key `after`."""
    cond = _where(context_id, f)
    if after is not None:
        cond.append(sa.tuple_(en.c.collection_id, en.c.user_id) > sa.tuple_(sa.literal(after[0]),
                                                                           sa.literal(after[1])))
    q = (sa.select(en.c.user_id, en.c.collection_id, en.c.enrolled_date, en.c.active, en.c.status, en.c.progress,
                   en.c.completed_on, en.c.issued_certificates)
         .where(*cond).order_by(en.c.collection_id, en.c.user_id).limit(limit))
    return (await conn.execute(q)).all()


async def unit_progress(conn: AsyncConnection, context_id: str, user_ids: list[str]) -> dict:
    """(user, collection) -> {unit id: progress}, as the worker last stored them."""
    out: dict = {}
    if not user_ids:
        return out
    q = (sa.select(agg.c.user_id, agg.c.collection_id, agg.c.activity_id, agg.c.progress)
         .where(agg.c.user_id.in_(user_ids), agg.c.context_id == context_id, agg.c.activity_type == UNIT))
    for r in await conn.execute(q):
        out.setdefault((r.user_id, r.collection_id), {})[r.activity_id] = r.progress
    return out


async def best_scores(conn: AsyncConnection, context_id: str, user_ids: list[str]) -> dict:
    """(user, collection) -> {content id: {score, maxScore, attempts}}: each assessment's best attempt."""
    out: dict = {}
    if not user_ids:
        return out
    q = (sa.select(ucc.c.user_id, ucc.c.collection_id, ucc.c.content_id, ucc.c.best_score, ucc.c.best_max_score,
                   ucc.c.attempts)
         .where(ucc.c.user_id.in_(user_ids), ucc.c.context_id == context_id, ucc.c.attempts > 0))
    for r in await conn.execute(q):
        out.setdefault((r.user_id, r.collection_id), {})[r.content_id] = {
            "score": r.best_score, "maxScore": r.best_max_score, "attempts": r.attempts}
    return out


async def last_access(conn: AsyncConnection, context_id: str, user_ids: list[str]) -> dict:
    """(user, collection) -> the latest access time of any of its contents."""
    if not user_ids:
        return {}
    q = (sa.select(ucc.c.user_id, ucc.c.collection_id, sa.func.max(ucc.c.last_access_time))
         .where(ucc.c.user_id.in_(user_ids), ucc.c.context_id == context_id)
         .group_by(ucc.c.user_id, ucc.c.collection_id))
    return {(r[0], r[1]): r[2] for r in await conn.execute(q)}


async def enrolment_breakdown(conn: AsyncConnection, context_id: str, collection_id: str | None,
                              offset_ms: int) -> list:
    """(collection, active, status, progress, completion day or None, learners): one pass over the
    context's enrolments (the covering index on PostgreSQL) for all the counts of the stats."""
    day = sa.case((en.c.completed_on.is_(None), None), else_=(en.c.completed_on + offset_ms) // DAY_MS)
    cond = _where(context_id, RosterFilter(collection_id=collection_id))
    q = (sa.select(en.c.collection_id, en.c.active, en.c.status, en.c.progress, day.label("day"), sa.func.count())
         .where(*cond)
         .group_by(en.c.collection_id, en.c.active, en.c.status, en.c.progress, sa.literal_column("day")))
    return (await conn.execute(q)).all()


async def median_time_to_complete(conn: AsyncConnection, context_id: str, collection_id: str | None,
                                  completed: int) -> float | None:
    """The median of completed_on - enrolled_date (ms) over the `completed` active completed enrolments."""
    if completed <= 0:
        return None
    took = sa.func.max(en.c.completed_on - en.c.enrolled_date, 0) if conn.dialect.name == "sqlite" \
        else sa.func.greatest(en.c.completed_on - en.c.enrolled_date, 0)
    cond = _where(context_id, RosterFilter(collection_id=collection_id, active=True))
    q = (sa.select(took.label("took")).where(*cond, en.c.completed_on.is_not(None))
         .order_by(sa.literal_column("took")).offset((completed - 1) // 2).limit(2 - completed % 2))
    values = (await conn.execute(q)).scalars().all()
    return sum(values) / len(values) if values else None


async def score_distribution(conn: AsyncConnection, context_id: str, collection_id: str | None) -> list:
    """(collection, content, best score, max score, learners, attempts) of the scored rows
    (ix_ucc_scored): few rows, as scores take few distinct values; medians are computed from it."""
    cond = [ucc.c.context_id == context_id, ucc.c.attempts > 0, ucc.c.best_score.is_not(None)]
    if collection_id is not None:
        cond.append(ucc.c.collection_id == collection_id)
    q = (sa.select(ucc.c.collection_id, ucc.c.content_id, ucc.c.best_score, ucc.c.best_max_score, sa.func.count(),
                   sa.func.sum(ucc.c.attempts))
         .where(*cond)
         .group_by(ucc.c.collection_id, ucc.c.content_id, ucc.c.best_score, ucc.c.best_max_score))
    return (await conn.execute(q)).all()


async def context_known(conn: AsyncConnection, context_id: str) -> bool:
    """Registered, or holding at least one enrolment."""
    if (await conn.execute(sa.select(ctx.c.context_id).where(ctx.c.context_id == context_id))).first():
        return True
    return (await conn.execute(sa.select(en.c.user_id).where(en.c.context_id == context_id).limit(1))).first() is not None


async def list_contexts(conn: AsyncConnection, prefix: str, limit: int) -> list:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    q = (sa.select(ctx.c.context_id, ctx.c.type, ctx.c.collection_ids, ctx.c.start_date, ctx.c.end_date)
         .where(ctx.c.context_id.like(escaped + "%", escape="\\")).order_by(ctx.c.context_id).limit(limit))
    return (await conn.execute(q)).all()


async def offered_collections(conn: AsyncConnection, context_id: str) -> list[str] | None:
    """The collections a registered context offers; None if it is not registered."""
    row = (await conn.execute(sa.select(ctx.c.collection_ids).where(ctx.c.context_id == context_id))).first()
    return list(row[0] or []) if row else None


async def recent_completions(conn: AsyncConnection, user_id: str, limit: int) -> list:
    q = (sa.select(ucc.c.collection_id, ucc.c.context_id, ucc.c.content_id, ucc.c.last_completed_time)
         .where(ucc.c.user_id == user_id, ucc.c.last_completed_time.is_not(None), ucc.c.status == 2)
         .order_by(ucc.c.last_completed_time.desc()).limit(limit))
    return (await conn.execute(q)).all()

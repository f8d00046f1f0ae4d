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


def _active(context_id: str, collection_id: str | None) -> list:
    return _where(context_id, RosterFilter(collection_id=collection_id, active=True))


async def status_progress_counts(conn: AsyncConnection, context_id: str, collection_id: str | None) -> list:
    """(status, progress, learners) of the active enrolments: at most 3 x 101 rows."""
    q = (sa.select(en.c.status, en.c.progress, sa.func.count())
         .where(*_active(context_id, collection_id)).group_by(en.c.status, en.c.progress))
    return (await conn.execute(q)).all()


async def inactive_count(conn: AsyncConnection, context_id: str, collection_id: str | None) -> int:
    cond = _where(context_id, RosterFilter(collection_id=collection_id, active=False))
    return (await conn.execute(sa.select(sa.func.count()).select_from(en).where(*cond))).scalar_one()


async def completions_per_day(conn: AsyncConnection, context_id: str, collection_id: str | None,
                              offset_ms: int) -> dict[int, int]:
    day = (en.c.completed_on + offset_ms) // DAY_MS  # integer division on both databases
    q = (sa.select(day.label("day"), sa.func.count())
         .where(*_active(context_id, collection_id), en.c.completed_on.is_not(None)).group_by(sa.literal_column("day")))
    return {int(r[0]): r[1] for r in await conn.execute(q)}


async def median_time_to_complete(conn: AsyncConnection, context_id: str, collection_id: str | None,
                                  completed: int) -> float | None:
    """The median of completed_on - enrolled_date (ms) over the `completed` completed enrolments."""
    if completed <= 0:
        return None
    took = sa.func.max(en.c.completed_on - en.c.enrolled_date, 0) if conn.dialect.name == "sqlite" \
        else sa.func.greatest(en.c.completed_on - en.c.enrolled_date, 0)
    q = (sa.select(took.label("took"))
         .where(*_active(context_id, collection_id), en.c.completed_on.is_not(None))
         .order_by(sa.literal_column("took")).offset((completed - 1) // 2).limit(2 - completed % 2))
    values = (await conn.execute(q)).scalars().all()
    return sum(values) / len(values) if values else None


async def assessment_stats(conn: AsyncConnection, context_id: str, collection_id: str | None,
                           pass_percent: float) -> list:
    """Per (collection, content) with scored rows: learners, attempts, mean/median best score and
    percent, the largest max score, and learners whose best percent reaches `pass_percent`."""
    part = (ucc.c.collection_id, ucc.c.content_id)
    pct = sa.func.coalesce(ucc.c.best_score * 100.0 / sa.func.nullif(ucc.c.best_max_score, 0), 0.0)
    cond = [ucc.c.context_id == context_id, ucc.c.attempts > 0, ucc.c.best_score.is_not(None)]
    if collection_id is not None:
        cond.append(ucc.c.collection_id == collection_id)
    inner = (sa.select(ucc.c.collection_id, ucc.c.content_id, ucc.c.attempts, ucc.c.best_max_score,
                       ucc.c.best_score.label("score"), pct.label("pct"),
                       sa.func.row_number().over(partition_by=part, order_by=ucc.c.best_score).label("rs"),
                       sa.func.row_number().over(partition_by=part, order_by=pct).label("rp"),
                       sa.func.count().over(partition_by=part).label("n"))
             .where(*cond).subquery())
    mid_lo, mid_hi = (inner.c.n + 1) // 2, (inner.c.n + 2) // 2  # the middle row(s)

    def median(col, rank):
        return sa.func.avg(sa.case((rank.in_([mid_lo, mid_hi]), col)))

    q = (sa.select(inner.c.collection_id, inner.c.content_id, sa.func.count().label("learners"),
                   sa.func.sum(inner.c.attempts).label("attempts"),
                   sa.func.avg(inner.c.score).label("mean_score"), median(inner.c.score, inner.c.rs).label("median_score"),
                   sa.func.avg(inner.c.pct).label("mean_percent"), median(inner.c.pct, inner.c.rp).label("median_percent"),
                   sa.func.max(inner.c.best_max_score).label("max_score"),
                   sa.func.sum(sa.case((inner.c.pct >= pass_percent, 1), else_=0)).label("passed"))
         .group_by(inner.c.collection_id, inner.c.content_id)
         .order_by(inner.c.collection_id, inner.c.content_id))
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


async def context_collections(conn: AsyncConnection, context_id: str) -> list[str]:
    """The collections of a context: those it offers, then any others its enrolments name."""
    row = (await conn.execute(sa.select(ctx.c.collection_ids).where(ctx.c.context_id == context_id))).first()
    offered = list(row[0] or []) if row else []
    enrolled = (await conn.execute(sa.select(en.c.collection_id).where(en.c.context_id == context_id)
                                   .group_by(en.c.collection_id))).scalars().all()
    return list(dict.fromkeys([*offered, *enrolled]))


async def recent_completions(conn: AsyncConnection, user_id: str, limit: int) -> list:
    q = (sa.select(ucc.c.collection_id, ucc.c.context_id, ucc.c.content_id, ucc.c.last_completed_time)
         .where(ucc.c.user_id == user_id, ucc.c.last_completed_time.is_not(None), ucc.c.status == 2)
         .order_by(ucc.c.last_completed_time.desc()).limit(limit))
    return (await conn.execute(q)).all()

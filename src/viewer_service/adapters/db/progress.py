"""Repository for collection progress: the dirty-scope work queue, aggregates and enrolments."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.progress import ActivityProgress, ScopeProgress
from ...domain.scope import Scope
from .notify import notify
from .tables import enrolment as en, scope_dirty as d, user_activity_agg as agg
from .views import _insert

COURSE, UNIT = "Course", "Unit"  # activity types; "Course" as Sunbird's certificate criteria read it


def where_scope(t: sa.Table, s: Scope):
    return sa.and_(t.c.user_id == s.user_id, t.c.collection_id == s.collection_id, t.c.context_id == s.context_id)


# -- the work queue -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Claim:
    scope: Scope
    seq: int
    attempts: int
    propagate: bool = True
    marked_at: int | None = None  # ms: when the last mark was made (the worker's lag metric)


async def claim(conn: AsyncConnection, worker_id: str, now_ms: int, lease_ms: int, limit: int) -> list[Claim]:
    """Claim up to `limit` due scopes for `lease_ms`. Concurrent workers skip each other's rows
    (PostgreSQL SKIP LOCKED; SQLite transactions are serial). An expired lease is due again."""
    keys = (d.c.user_id, d.c.collection_id, d.c.context_id)
    due = sa.select(*keys).where(d.c.due_at <= now_ms).order_by(d.c.due_at).limit(limit)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    stmt = (sa.update(d).where(sa.tuple_(*keys).in_(due))
            .values(claimed_by=worker_id, due_at=now_ms + lease_ms, attempts=d.c.attempts + 1)
            .returning(*keys, d.c.seq, d.c.attempts, d.c.propagate, d.c.marked_at))
    return [Claim(Scope(r[0], r[1], r[2]), r[3], r[4], bool(r[5]), r[6]) for r in await conn.execute(stmt)]


async def finish(conn: AsyncConnection, c: Claim, worker_id: str, now_ms: int) -> None:
    """Done with a claim: drop the row unless it was marked again meanwhile (then it is due now)."""
    done = await conn.execute(sa.delete(d).where(where_scope(d, c.scope), d.c.seq == c.seq))
    if done.rowcount == 0:
        await conn.execute(sa.update(d).where(where_scope(d, c.scope), d.c.claimed_by == worker_id)
                           .values(claimed_by=None, due_at=now_ms, attempts=0))


async def defer(conn: AsyncConnection, c: Claim, worker_id: str, due_at: int) -> None:
    await conn.execute(sa.update(d).where(where_scope(d, c.scope), d.c.claimed_by == worker_id)
                       .values(claimed_by=None, due_at=due_at))


async def requeue_collection(conn: AsyncConnection, collection_id: str, now_ms: int) -> None:
    """The collection changed or became known: every scope of it is recomputed."""
    await conn.execute(sa.update(d).where(d.c.collection_id == collection_id, d.c.claimed_by.is_(None))
                       .values(due_at=now_ms))
    scopes = sa.select(agg.c.user_id, agg.c.collection_id, agg.c.context_id, sa.literal(1), sa.literal(now_ms),
                       sa.literal(now_ms)).where(agg.c.collection_id == collection_id, agg.c.activity_type == COURSE)
    stmt = _insert(conn, d).from_select(["user_id", "collection_id", "context_id", "seq", "marked_at", "due_at"], scopes)
    await conn.execute(stmt.on_conflict_do_nothing())
    await notify(conn)


async def lock_scope(conn: AsyncConnection, s: Scope) -> None:
    """Serialise recomputes of one scope (PostgreSQL; SQLite write transactions are serial)."""
    if conn.dialect.name == "postgresql":
        key = f"{len(s.user_id)}:{s.user_id}:{len(s.collection_id)}:{s.collection_id}:{s.context_id}"
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))


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


# -- enrolments -----------------------------------------------------------------

async def load_enrolment(conn: AsyncConnection, s: Scope, *, for_update: bool = False):
    q = sa.select(en).where(where_scope(en, s))
    if for_update and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).first()


async def update_enrolment_progress(conn: AsyncConnection, s: Scope, a: ActivityProgress, now_ms: int) -> None:
    await conn.execute(sa.update(en).where(where_scope(en, s)).values(
        status=a.status, progress=a.progress, completed_on=a.completed_on, updated_at=now_ms))


async def consumed_scopes(conn: AsyncConnection, user_id: str, s: Scope | None = None) -> dict[Scope, int | None]:
    """The learner's scopes that hold consumption inside a collection, with the first access
    time. A standalone content view (the collection is the content itself) is not a summary."""
    from .tables import user_content_consumption as ucc
    q = (sa.select(ucc.c.collection_id, ucc.c.context_id, sa.func.min(ucc.c.first_access_time))
         .where(ucc.c.user_id == user_id if s is None else where_scope(ucc, s))
         .group_by(ucc.c.collection_id, ucc.c.context_id)
         .having(sa.func.sum(sa.case((ucc.c.content_id != ucc.c.collection_id, 1), else_=0)) > 0))
    return {Scope(user_id, r[0], r[1]): r[2] for r in await conn.execute(q)}

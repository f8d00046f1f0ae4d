"""Repository for the dirty-scope work queue (table scope_dirty): a write marks the scopes whose
aggregates it changed, in its own transaction; the aggregation worker claims them with a lease."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from .notify import notify
from .progress import COURSE
from .sql import claim_due, insert, where_scope
from .tables import scope_dirty as d, user_activity_agg as agg


@dataclass(frozen=True, slots=True)
class Claim:
    scope: Scope
    seq: int
    attempts: int
    propagate: bool = True
    marked_at: int | None = None  # ms: when the last mark was made (the worker's lag metric)


async def mark(conn: AsyncConnection, scopes: Iterable[Scope], now_ms: int, *, propagate: bool = True) -> None:
    params = [
        {"user_id": s.user_id, "collection_id": s.collection_id, "context_id": s.context_id,
         "seq": 1, "marked_at": now_ms, "due_at": now_ms, "propagate": propagate}
        for s in sorted(set(scopes), key=lambda s: (s.user_id, s.collection_id, s.context_id))
    ]
    if not params:
        return
    await conn.execute(_mark_stmt(conn), params)
    await notify(conn)  # the workers wake when this commits


def _mark_stmt(conn: AsyncConnection):
    stmt = insert(conn, d)
    return stmt.on_conflict_do_update(
        index_elements=[d.c.user_id, d.c.collection_id, d.c.context_id],
        set_={
            "seq": d.c.seq + 1,
            "marked_at": stmt.excluded.marked_at,
            "propagate": d.c.propagate | stmt.excluded.propagate,
            # A claimed row keeps its lease (the claimant sees the new seq and requeues it); an
            # unclaimed one waiting for its collection becomes due now.
            "due_at": sa.case((d.c.claimed_by.is_(None) & (stmt.excluded.due_at < d.c.due_at), stmt.excluded.due_at),
                              else_=d.c.due_at),
        },
    )


_KEYS = (d.c.user_id, d.c.collection_id, d.c.context_id)


async def claim(conn: AsyncConnection, worker_id: str, now_ms: int, lease_ms: int, limit: int) -> list[Claim]:
    """Claim up to `limit` due scopes for `lease_ms` (sql.claim_due)."""
    rows = await claim_due(conn, d, _KEYS, (*_KEYS, d.c.seq, d.c.attempts, d.c.propagate, d.c.marked_at),
                           worker_id, now_ms, lease_ms, limit)
    return [Claim(Scope(r[0], r[1], r[2]), r[3], r[4], bool(r[5]), r[6]) for r in rows]


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
    stmt = insert(conn, d).from_select(["user_id", "collection_id", "context_id", "seq", "marked_at", "due_at"], scopes)
    await conn.execute(stmt.on_conflict_do_nothing())
    await notify(conn)


async def clear(conn: AsyncConnection) -> None:
    """Empty the queue (a mode migration marks every scope again)."""
    await conn.execute(sa.delete(d))

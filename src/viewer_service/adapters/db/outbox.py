"""Repository for the event outbox: events are queued in the transaction of the fact they
report, and leave the table only once the sink has them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.events import OutboxEvent
from .sql import claim_due, insert
from .tables import event_outbox as o

Key = tuple[str, str]  # (user_id, event_id)


@dataclass(frozen=True)
class Claimed:
    user_id: str
    event_id: str
    kind: str
    payload: dict
    attempts: int  # counting this claim: above 1, an earlier claimant may have published it

    @property
    def key(self) -> Key:
        return (self.user_id, self.event_id)


async def enqueue(conn: AsyncConnection, user_id: str, events: Sequence[OutboxEvent], now_ms: int) -> None:
    """Queue events, due now. An event already queued (same user and event_id) is left as it is."""
    if not events:
        return
    params = [{"user_id": user_id, "event_id": e.event_id, "kind": e.kind, "collection_id": e.collection_id,
               "context_id": e.context_id, "payload": e.payload, "created_at": now_ms, "due_at": now_ms,
               "attempts": 0} for e in events]
    await conn.execute(insert(conn, o).on_conflict_do_nothing(), params)


async def claim(conn: AsyncConnection, worker_id: str, now_ms: int, lease_ms: int, limit: int) -> list[Claimed]:
    """Claim up to `limit` due events for `lease_ms` (sql.claim_due)."""
    rows = await claim_due(conn, o, (o.c.user_id, o.c.event_id),
                           (o.c.user_id, o.c.event_id, o.c.kind, o.c.payload, o.c.attempts),
                           worker_id, now_ms, lease_ms, limit)
    return [Claimed(*r) for r in rows]


def _keys_where(keys: Iterable[Key], worker_id: str | None):
    cond = sa.tuple_(o.c.user_id, o.c.event_id).in_(list(keys))
    return cond if worker_id is None else sa.and_(cond, o.c.claimed_by == worker_id)


async def delete(conn: AsyncConnection, keys: Iterable[Key], worker_id: str | None = None) -> int:
    """Drop delivered events. With `worker_id`, only while still claimed by it: once the lease
    has passed to another claimant, that one finishes the job."""
    keys = list(keys)
    if not keys:
        return 0
    return (await conn.execute(sa.delete(o).where(_keys_where(keys, worker_id)))).rowcount


async def release(conn: AsyncConnection, keys: Iterable[Key], due_at: int, worker_id: str | None = None) -> None:
    """Give events back after a failed delivery, due again at `due_at` (the retry backoff)."""
    keys = list(keys)
    if keys:
        await conn.execute(sa.update(o).where(_keys_where(keys, worker_id)).values(claimed_by=None, due_at=due_at))


async def erase(conn: AsyncConnection, user_id: str, collection_id: str | None = None,
                context_id: str | None = None) -> int:
    """Drop a learner's undelivered events: all, or those about one collection / context.
    An event a dispatcher has already claimed may still reach the sink."""
    cond = [o.c.user_id == user_id]
    if collection_id is not None:
        cond.append(o.c.collection_id == collection_id)
    if context_id is not None:
        cond.append(o.c.context_id == context_id)
    return (await conn.execute(sa.delete(o).where(*cond))).rowcount

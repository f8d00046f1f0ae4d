"""Repository for assessment attempts (table assessment_aggregator)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.assessments import ScoredAttempt, StoredAttempt
from ...domain.scope import Scope
from ...domain.views import RowKey
from .tables import assessment_aggregator as aa
from .transaction import ConcurrentInsert
from .sql import insert, where_scope


def _content_where(k: RowKey):
    return sa.and_(aa.c.user_id == k.user_id, aa.c.collection_id == k.collection_id,
                   aa.c.context_id == k.context_id, aa.c.content_id == k.content_id)


async def load_attempts_many(conn: AsyncConnection, keys) -> dict[RowKey, dict[str, StoredAttempt]]:
    """The stored attempts of many contents in one statement."""
    keys = list(keys)
    if not keys:
        return {}
    kc = (aa.c.user_id, aa.c.collection_id, aa.c.context_id, aa.c.content_id)
    # user_id IN (...) lets SQLite search the primary key (see views.lock_rows).
    q = sa.select(*kc, aa.c.attempt_id, aa.c.last_attempted_on, aa.c.total_score, aa.c.total_max_score).where(
        aa.c.user_id.in_({k.user_id for k in keys}),
        sa.tuple_(*kc).in_([(k.user_id, k.collection_id, k.context_id, k.content_id) for k in keys]))
    out: dict[RowKey, dict[str, StoredAttempt]] = {}
    for r in await conn.execute(q):
        out.setdefault(RowKey(r[0], r[1], r[2], r[3]), {})[r[4]] = StoredAttempt(*r[4:])
    return out


def _values(a: ScoredAttempt, now_ms: int) -> dict:
    return {"updated_on": now_ms, "last_attempted_on": a.assessment_ts, "total_score": a.total_score,
            "total_max_score": a.total_max_score, "grand_total": a.grand_total,
            "questions": [q.as_json() for q in a.questions]}


async def insert_attempts_many(conn: AsyncConnection, items: Sequence[tuple[RowKey, Sequence[ScoredAttempt]]],
                               now_ms: int) -> None:
    """New attempts of many contents, in one statement."""
    params = [{"user_id": k.user_id, "collection_id": k.collection_id, "context_id": k.context_id,
               "content_id": k.content_id, "attempt_id": a.attempt_id, "created_on": now_ms, **_values(a, now_ms)}
              for k, attempts in items for a in attempts]
    if not params:
        return
    stmt = insert(conn, aa).on_conflict_do_nothing().returning(aa.c.attempt_id)
    if len((await conn.execute(stmt, params)).all()) != len(params):
        raise ConcurrentInsert()  # another submit stored one first: start over on fresh rows


async def replace_attempts(conn: AsyncConnection, k: RowKey, attempts: Sequence[ScoredAttempt], now_ms: int) -> None:
    """Overwrite stored attempts (created_on kept); each only if still older than the new one."""
    for a in attempts:
        done = await conn.execute(sa.update(aa).where(
            _content_where(k), aa.c.attempt_id == a.attempt_id, aa.c.last_attempted_on < a.assessment_ts,
        ).values(_values(a, now_ms)))
        if done.rowcount != 1:
            raise ConcurrentInsert()


async def attempt_details(conn: AsyncConnection, s: Scope, content_ids: Sequence[str] | None) -> dict[str, list]:
    """The attempts of a scope's contents (all when None), oldest first."""
    q = sa.select(aa.c.content_id, aa.c.attempt_id, aa.c.total_score, aa.c.total_max_score, aa.c.grand_total,
                  aa.c.last_attempted_on).where(
        aa.c.user_id == s.user_id, aa.c.collection_id == s.collection_id, aa.c.context_id == s.context_id)
    if content_ids is not None:
        q = q.where(aa.c.content_id.in_(list(content_ids)))
    out: dict[str, list] = {}
    for r in await conn.execute(q.order_by(aa.c.content_id, aa.c.last_attempted_on, aa.c.attempt_id)):
        out.setdefault(r.content_id, []).append(r)
    return out


async def move_attempts(conn: AsyncConnection, src: Scope, dst: Scope) -> None:
    """Re-key a scope's assessment attempts; an attempt id the target already holds stays there."""
    q = sa.select(aa).where(where_scope(aa, src))
    rows = [dict(r._mapping) for r in await conn.execute(q)]
    if rows:
        for r in rows:
            r.update(collection_id=dst.collection_id, context_id=dst.context_id)
        await conn.execute(insert(conn, aa).on_conflict_do_nothing(), rows)
        await conn.execute(sa.delete(aa).where(where_scope(aa, src)))


async def copy_attempt(conn: AsyncConnection, src: RowKey, dst: RowKey, attempt_id: str | None) -> None:
    """Copy one attempt (the carried best one), so later attempts in the target rank against it."""
    if attempt_id is None:
        return
    q = sa.select(aa).where(aa.c.user_id == src.user_id, aa.c.collection_id == src.collection_id,
                            aa.c.context_id == src.context_id, aa.c.content_id == src.content_id,
                            aa.c.attempt_id == attempt_id)
    row = (await conn.execute(q)).first()
    if row is not None:
        r = dict(row._mapping)
        r.update(collection_id=dst.collection_id, context_id=dst.context_id)
        await conn.execute(insert(conn, aa).on_conflict_do_nothing(), [r])

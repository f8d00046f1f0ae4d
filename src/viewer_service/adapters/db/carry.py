"""Queries for context modes and carry-forward: a learner's rows across scopes, active
enrolments with their contexts, moving a scope's rows, and the recorded instance settings."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from ...domain.views import ContentView, RowKey
from .progress import where_scope
from .tables import (archived_consumption as arc, assessment_aggregator as aa, context as ctx, enrolment as en,
                     instance_setting, user_activity_agg as agg, user_content_consumption as ucc)
from .views import _ARC, _insert, load_scope, to_archived, to_row, with_archived


async def user_rows(conn: AsyncConnection, user_id: str, content_ids: Iterable[str]) -> list[ContentView]:
    """The learner's rows of these contents, in every scope."""
    ids = sorted(set(content_ids))
    if not ids:
        return []
    q = sa.select(ucc).where(ucc.c.user_id == user_id, ucc.c.content_id.in_(ids))
    rows = [to_row(r) for r in await conn.execute(q)]
    # Archived completions carry too (their kept values: docs/archive.md).
    archived = await conn.execute(_ARC.where(arc.c.user_id == user_id, arc.c.content_id.in_(ids)))
    return with_archived(rows, [to_archived(r).live() for r in archived])


async def lock_learners(conn: AsyncConnection, user_ids: list[str], *, shared: bool) -> None:
    """Serialise an enrolment's pull (exclusive) with the writes completing the learner's contents
    (shared, so completions never wait on each other). PostgreSQL; SQLite writes are serial."""
    if conn.dialect.name != "postgresql" or not user_ids:
        return
    fn = sa.func.pg_advisory_xact_lock_shared if shared else sa.func.pg_advisory_xact_lock
    keys = sa.func.unnest(sa.bindparam("keys", type_=ARRAY(sa.Text))).table_valued("k").render_derived("u")
    await conn.execute(sa.select(sa.func.count(fn(sa.func.hashtextextended(keys.c.k, 0)))),
                       {"keys": [f"learner:{u}" for u in sorted(set(user_ids))]})


async def mode_rows(conn: AsyncConnection, s: Scope, mode: str, leaves: Iterable[str]) -> list[ContentView]:
    """The rows that count for the enrolment scope `s`, re-keyed to it. strict: its own rows;
    collection: those at (collection, collection); content: each leaf's own (leaf, leaf) row."""
    if mode == "strict":
        return await load_scope(conn, s)
    if mode == "collection":
        q = sa.select(ucc).where(ucc.c.user_id == s.user_id, ucc.c.collection_id == s.collection_id,
                                 ucc.c.context_id == s.collection_id)
    else:
        ids = sorted(set(leaves))
        if not ids:
            return []
        q = sa.select(ucc).where(ucc.c.user_id == s.user_id, ucc.c.collection_id.in_(ids),
                                 ucc.c.context_id == ucc.c.collection_id, ucc.c.content_id == ucc.c.collection_id)
    rows = [to_row(r) for r in await conn.execute(q)]
    return [v if v.key.scope == s else _rekey(v, s) for v in rows]


def _rekey(v: ContentView, s: Scope) -> ContentView:
    from dataclasses import replace

    return replace(v, key=RowKey(s.user_id, s.collection_id, s.context_id, v.key.content_id))


# Built once: the worker runs it for every recompute of an enrolled scope.
_ACTIVE = (sa.select(en, ctx.c.start_date, ctx.c.end_date, ctx.c.document.label("context_document"))
           .select_from(en.outerjoin(ctx, ctx.c.context_id == en.c.context_id))
           .where(en.c.active.is_(True)))
_ENROLMENTS = _ACTIVE.where(en.c.user_id == sa.bindparam("user_id"))


async def enrolments_with_contexts(conn: AsyncConnection, user_id: str):
    """The learner's active enrolments, each with its context's dates and document (None for a
    collection's own context, which is not registered)."""
    return (await conn.execute(_ENROLMENTS, {"user_id": user_id})).all()


_ENROLMENTS_OF = _ACTIVE.where(en.c.user_id.in_(sa.bindparam("user_ids", expanding=True)))


async def enrolments_of(conn: AsyncConnection, user_ids: list[str]):
    """enrolments_with_contexts for several learners in one query (a write batch)."""
    if len(user_ids) == 1:
        return await enrolments_with_contexts(conn, user_ids[0])
    return (await conn.execute(_ENROLMENTS_OF, {"user_ids": user_ids})).all()


async def delete_rows(conn: AsyncConnection, s: Scope) -> None:
    await conn.execute(sa.delete(ucc).where(where_scope(ucc, s)))
    await conn.execute(sa.delete(agg).where(where_scope(agg, s)))


async def move_attempts(conn: AsyncConnection, src: Scope, dst: Scope) -> None:
    """Re-key a scope's assessment attempts; an attempt id the target already holds stays there."""
    q = sa.select(aa).where(where_scope(aa, src))
    rows = [dict(r._mapping) for r in await conn.execute(q)]
    if rows:
        for r in rows:
            r.update(collection_id=dst.collection_id, context_id=dst.context_id)
        await conn.execute(_insert(conn, aa).on_conflict_do_nothing(), rows)
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
        await conn.execute(_insert(conn, aa).on_conflict_do_nothing(), [r])


async def set_moved(conn: AsyncConnection, s: Scope, moved_to: dict, now_ms: int) -> None:
    await conn.execute(sa.update(en).where(where_scope(en, s)).values(
        active=False, moved_to=moved_to, status=0, progress=0, completed_on=None, updated_at=now_ms))


# -- instance settings --------------------------------------------------------------

async def get_setting(conn: AsyncConnection, name: str) -> str | None:
    return (await conn.execute(sa.select(instance_setting.c.value).where(instance_setting.c.name == name))).scalar()


async def set_setting(conn: AsyncConnection, name: str, value: str, now_ms: int) -> None:
    stmt = _insert(conn, instance_setting).values(name=name, value=value, updated_at=now_ms)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[instance_setting.c.name],
                                                  set_={"value": value, "updated_at": now_ms}))

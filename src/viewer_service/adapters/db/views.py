"""Repository for consumption rows (table user_content_consumption), hot and archived."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import ContextMode, Scope
from ...domain.views import ArchivedView, ContentView, RowKey
from .sql import where_scope
from .tables import archived_consumption as arc, user_content_consumption as ucc
from .transaction import ConcurrentInsert

KEY_COLS = (ucc.c.user_id, ucc.c.collection_id, ucc.c.context_id, ucc.c.content_id)
DATA_COLS = [c.name for c in ucc.columns if c.name not in {k.name for k in KEY_COLS}]
assert [c.name for c in ucc.columns][:4] == [k.name for k in KEY_COLS]
assert DATA_COLS == [f for f in ContentView.__dataclass_fields__ if f != "key"], "to_row relies on this order"


def to_row(r) -> ContentView:
    # Positional: the table's data columns are declared in ContentView's field order.
    return ContentView(RowKey(r[0], r[1], r[2], r[3]), *r[4:])


def _params(v: ContentView) -> dict:
    d = {name: getattr(v, name) for name in DATA_COLS}
    d.update(user_id=v.key.user_id, collection_id=v.key.collection_id,
             context_id=v.key.context_id, content_id=v.key.content_id)
    return d


async def load_scope(conn: AsyncConnection, scope: Scope) -> list[ContentView]:
    """The scope's rows: the hot ones, and the archived ones (ArchivedView) that have none."""
    rows = [to_row(r) for r in await conn.execute(sa.select(ucc).where(where_scope(ucc, scope)))]
    return with_archived(rows, [to_archived(r) for r in await conn.execute(_ARC.where(where_scope(arc, scope)))])


# -- archived rows (docs/archive.md) ----------------------------------------------
# A hot row of the same key wins: it was started from the archived one, so it holds at least as much.

_ARC_DATA = [n for n in DATA_COLS if n != "progress_details"]
_ARC = sa.select(arc.c.user_id, arc.c.collection_id, arc.c.context_id, arc.c.content_id,
                 *(arc.c[n] for n in _ARC_DATA), arc.c.attempt_ids)


def to_archived(r) -> ArchivedView:
    return ArchivedView(RowKey(r[0], r[1], r[2], r[3]), **dict(zip(_ARC_DATA, r[4:-1])),
                        attempt_ids=tuple(r[-1] or ()))


def with_archived(rows: list[ContentView], archived: list[ArchivedView]) -> list[ContentView]:
    if not archived:
        return rows
    have = {v.key for v in rows}
    return rows + [a for a in archived if a.key not in have]


async def lock_scope(conn: AsyncConnection, s: Scope) -> list[ContentView]:
    """The scope's hot rows, locked (PostgreSQL) until the transaction ends."""
    q = sa.select(ucc).where(where_scope(ucc, s)).order_by(ucc.c.content_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return [to_row(r) for r in await conn.execute(q)]


async def archived_rows(conn: AsyncConnection, keys: Iterable[RowKey]) -> dict[RowKey, ArchivedView]:
    """The archived rows of these keys (most often none: one indexed probe)."""
    keys = sorted(set(keys), key=_key_tuple)
    if not keys:
        return {}
    if conn.dialect.name == "postgresql":
        q, params = _archived_pg, {name: [getattr(k, name) for k in keys] for name in _KEY_NAMES}
    else:
        q = _ARC.where(arc.c.user_id.in_({k.user_id for k in keys}),
                       sa.tuple_(arc.c.user_id, arc.c.collection_id, arc.c.context_id, arc.c.content_id)
                       .in_([_key_tuple(k) for k in keys]))
        params = {}
    return {(a := to_archived(r)).key: a for r in await conn.execute(q, params)}


async def lock_rows(conn: AsyncConnection, keys: Iterable[RowKey]) -> dict[RowKey, ContentView]:
    """Read the rows for `keys`, locking them (PostgreSQL) in key order so that two
    batches touching the same rows queue instead of deadlocking."""
    keys = sorted(set(keys), key=lambda k: (k.user_id, k.collection_id, k.context_id, k.content_id))
    if conn.dialect.name == "postgresql":
        # One statement text whatever the batch size, so asyncpg's prepared statement is reused.
        params = {name: [getattr(k, name) for k in keys] for name in _KEY_NAMES}
        q = _lock_pg
    else:
        params = {}
        # The user_id IN (...) term is what lets SQLite search the primary key: with the row-value
        # IN alone it scans the whole table (measured: 4x the CPU per write at 100k rows).
        q = (sa.select(ucc).where(ucc.c.user_id.in_({k.user_id for k in keys}),
                                  sa.tuple_(*KEY_COLS).in_([_key_tuple(k) for k in keys]))
             .order_by(*KEY_COLS))
    return {(v := to_row(r)).key: v for r in await conn.execute(q, params)}


_KEY_NAMES = ("user_id", "collection_id", "context_id", "content_id")
_wanted = sa.func.unnest(*(sa.bindparam(n, type_=ARRAY(sa.String)) for n in _KEY_NAMES)).table_valued(*_KEY_NAMES).render_derived("wanted")
_archived_pg = _ARC.join_from(arc, _wanted, sa.and_(*(arc.c[n] == _wanted.c[n] for n in _KEY_NAMES)))
_lock_pg = (
    sa.select(ucc)
    .join(_wanted, sa.and_(*(c == _wanted.c[c.name] for c in KEY_COLS)))
    .order_by(*KEY_COLS)
    .with_for_update(of=ucc)
)


def _key_tuple(k: RowKey) -> tuple:
    return (k.user_id, k.collection_id, k.context_id, k.content_id)


async def insert_rows(conn: AsyncConnection, rows: Sequence[ContentView]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        inserted = (await conn.execute(_insert_pg, _columns(rows))).all()
    else:
        stmt = sqlite.insert(ucc).on_conflict_do_nothing().returning(ucc.c.content_id)
        inserted = (await conn.execute(stmt, [_params(v) for v in rows])).all()
    if len(inserted) != len(rows):
        raise ConcurrentInsert()


async def update_rows(conn: AsyncConnection, rows: Sequence[ContentView]) -> None:
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(_update_pg, _columns(rows))
    else:
        await conn.execute(_update_sqlite, [{**_params(v), **_key_params(v.key)} for v in rows])


# PostgreSQL: a whole batch is one statement over column arrays (unnest), with the same text
# whatever the batch size. Far cheaper on the client than executemany's per-row work.
_ALL = [c.name for c in ucc.columns]
_JSON = {"progress_details", "carried_from"}  # sent as text, cast in the statement
_rows_pg = sa.func.unnest(*(
    # Named a_<column>: plain column names are reserved for VALUES/SET parameters.
    sa.bindparam(f"a_{c.name}", type_=ARRAY(sa.Text if c.name in _JSON else c.type)) for c in ucc.columns
)).table_valued(*_ALL).render_derived("v")
_value = {n: sa.cast(_rows_pg.c[n], JSONB) if n in _JSON else _rows_pg.c[n] for n in _ALL}
_insert_pg = (
    postgresql.insert(ucc)
    .from_select(_ALL, sa.select(*(_value[n] for n in _ALL)))
    .on_conflict_do_nothing()
    .returning(ucc.c.content_id)
)
_update_pg = (
    sa.update(ucc)
    .where(*(c == _rows_pg.c[c.name] for c in KEY_COLS))
    .values({n: _value[n] for n in DATA_COLS})
)


def _columns(rows: Sequence[ContentView]) -> dict[str, list]:
    cols = {n: [getattr(v.key, n) for v in rows] for n in _KEY_NAMES}
    for n in DATA_COLS:
        cols[n] = [getattr(v, n) for v in rows]
    for n in _JSON:
        cols[n] = [None if d is None else orjson.dumps(d).decode() for d in cols[n]]
    return {f"a_{n}": values for n, values in cols.items()}


def _key_params(k: RowKey) -> dict:
    return {"k_user": k.user_id, "k_collection": k.collection_id, "k_context": k.context_id, "k_content": k.content_id}


_update_sqlite = (
    sa.update(ucc)
    .where(
        ucc.c.user_id == sa.bindparam("k_user"),
        ucc.c.collection_id == sa.bindparam("k_collection"),
        ucc.c.context_id == sa.bindparam("k_context"),
        ucc.c.content_id == sa.bindparam("k_content"),
    )
    .values({name: sa.bindparam(name) for name in DATA_COLS})
)


# -- a learner's rows across scopes (context modes, carry-forward: docs/modes.md) ------

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


async def mode_rows(conn: AsyncConnection, s: Scope, mode: ContextMode, leaves: Iterable[str]) -> list[ContentView]:
    """The rows that count for the enrolment scope `s`, re-keyed to it. strict: its own rows;
    collection: those at (collection, collection); content: each leaf's own (leaf, leaf) row."""
    if mode is ContextMode.STRICT:
        return await load_scope(conn, s)
    if mode is ContextMode.COLLECTION:
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
    return replace(v, key=RowKey(s.user_id, s.collection_id, s.context_id, v.key.content_id))


async def delete_scope(conn: AsyncConnection, s: Scope) -> None:
    await conn.execute(sa.delete(ucc).where(where_scope(ucc, s)))


async def consumed_scopes(conn: AsyncConnection, user_id: str, s: Scope | None = None) -> dict[Scope, int | None]:
    """The learner's scopes that hold consumption inside a collection, with the first access
    time. A standalone content view (the collection is the content itself) is not a summary."""
    q = (sa.select(ucc.c.collection_id, ucc.c.context_id, sa.func.min(ucc.c.first_access_time))
         .where(ucc.c.user_id == user_id if s is None else where_scope(ucc, s))
         .group_by(ucc.c.collection_id, ucc.c.context_id)
         .having(sa.func.sum(sa.case((ucc.c.content_id != ucc.c.collection_id, 1), else_=0)) > 0))
    return {Scope(user_id, r[0], r[1]): r[2] for r in await conn.execute(q)}

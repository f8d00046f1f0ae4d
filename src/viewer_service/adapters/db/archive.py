"""Repository for archiving (docs/archive.md): the scopes due, their raw rows, the journal of
chunks, and the move of rows between the hot tables and the kept aggregate."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.scope import Scope
from .tables import (archive_chunk as ch, archived_consumption as arc, assessment_aggregator as aa, enrolment as en,
                     scope_dirty, user_content_consumption as ucc)
from .sql import insert

KEY = ("user_id", "collection_id", "context_id", "content_id")
ARC_DATA = [c.name for c in arc.columns if c.name not in KEY and c.name not in ("chunk_id", "attempt_chunks",
                                                                                  "attempt_ids", "archived_at")]
PAGE = 500  # scopes per IN list: well under both databases' parameter limits


def _scope_cols(t: sa.Table):
    return sa.tuple_(t.c.user_id, t.c.collection_id, t.c.context_id)


def _pages(items: Sequence, n: int = PAGE):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def _in_scopes(t: sa.Table, scopes: Sequence[Scope]):
    return sa.and_(t.c.user_id.in_({s.user_id for s in scopes}),
                   _scope_cols(t).in_([(s.user_id, s.collection_id, s.context_id) for s in scopes]))


# PostgreSQL: whole chunks as column arrays (unnest): one statement, the same text whatever the size,
# instead of IN lists that SQLAlchemy expands and PostgreSQL plans anew each time.
def _unnest(name: str, cols: Sequence[sa.Column], json: frozenset = frozenset()):
    return sa.func.unnest(*(
        sa.bindparam(f"{name}_{c.name}", type_=ARRAY(sa.Text if c.name in json else c.type)) for c in cols
    )).table_valued(*(c.name for c in cols)).render_derived(name)


_SCOPE = ("user_id", "collection_id", "context_id")
_s = _unnest("s", [ucc.c[n] for n in _SCOPE])


def _scope_arrays(scopes: Sequence[Scope]) -> dict:
    return {f"s_{n}": [getattr(x, n) for x in scopes] for n in _SCOPE}


def _join_scopes(t: sa.Table):
    return sa.and_(*(t.c[n] == _s.c[n] for n in _SCOPE))


def _raw_columns(t: sa.Table):
    """JSON columns as their text: the files store that text, so it is never decoded and re-encoded."""
    return [sa.cast(c, sa.Text).label(c.name) if isinstance(c.type, sa.JSON) else c for c in t.columns]


_raw_pg = {t.name: sa.select(*_raw_columns(t)).join(_s, _join_scopes(t)) for t in (ucc, aa)}
_versions_pg = (sa.select(ucc.c.user_id, ucc.c.collection_id, ucc.c.context_id, ucc.c.content_id, ucc.c.version)
                .join(_s, _join_scopes(ucc)).order_by(*(ucc.c[k] for k in KEY)).with_for_update(of=ucc))
_archived_pg = sa.select(arc).join(_s, _join_scopes(arc))
_k = _unnest("k", [ucc.c[n] for n in (*KEY, "version")])
_del_rows_pg = sa.delete(ucc).where(*(ucc.c[n] == _k.c[n] for n in (*KEY, "version")))
_a = _unnest("a", [aa.c[n] for n in (*KEY, "attempt_id")])
_del_attempts_pg = sa.delete(aa).where(*(aa.c[n] == _a.c[n] for n in (*KEY, "attempt_id")))
_ARC_JSON = frozenset(c.name for c in arc.columns if isinstance(c.type, sa.JSON))
_v = _unnest("v", list(arc.columns), _ARC_JSON)
_insert_arc_pg = sa.insert(arc).from_select(
    [c.name for c in arc.columns],
    sa.select(*(sa.cast(_v.c[c.name], JSONB) if c.name in _ARC_JSON else _v.c[c.name] for c in arc.columns)))


def _arrays(prefix: str, rows: Sequence[dict], names: Iterable[str], json: frozenset = frozenset()) -> dict:
    return {f"{prefix}_{n}": [None if n in json and r[n] is None else orjson.dumps(r[n]).decode() if n in json
                              else r[n] for r in rows] for n in names}


# -- what is due --------------------------------------------------------------------

def _due(before_ms: int):
    """Completed enrolments before the date with raw rows still hot, and no recompute pending
    (an aggregate about to change is not final yet)."""
    has_rows = sa.exists().where(ucc.c.user_id == en.c.user_id, ucc.c.collection_id == en.c.collection_id,
                                 ucc.c.context_id == en.c.context_id)
    dirty = sa.exists().where(scope_dirty.c.user_id == en.c.user_id,
                              scope_dirty.c.collection_id == en.c.collection_id,
                              scope_dirty.c.context_id == en.c.context_id)
    return sa.and_(en.c.status == 2, en.c.completed_on.is_not(None), en.c.completed_on < before_ms, has_rows, ~dirty)


async def count_due(conn: AsyncConnection, before_ms: int) -> int:
    return (await conn.execute(sa.select(sa.func.count()).select_from(en).where(_due(before_ms)))).scalar_one()


async def due_scopes(conn: AsyncConnection, before_ms: int, after: tuple | None, limit: int) -> list[tuple]:
    """The next `limit` due enrolments after `after`, in completion order: (completed_on, Scope)."""
    order = (en.c.completed_on, en.c.user_id, en.c.collection_id, en.c.context_id)
    q = sa.select(*order).where(_due(before_ms))
    if after is not None:
        q = q.where(en.c.completed_on >= after[0], sa.tuple_(*order) > sa.tuple_(*after))
    return [(r[0], Scope(r[1], r[2], r[3])) for r in await conn.execute(q.order_by(*order).limit(limit))]


async def raw_rows(conn: AsyncConnection, scopes: Sequence[Scope]) -> tuple[list[dict], list[dict]]:
    """The hot consumption rows and attempts of these scopes, as plain dicts (JSON columns as text)."""
    rows, attempts = [], []
    if conn.dialect.name == "postgresql":
        params = _scope_arrays(scopes)
        rows = [dict(r._mapping) for r in await conn.execute(_raw_pg[ucc.name], params)]
        attempts = [dict(r._mapping) for r in await conn.execute(_raw_pg[aa.name], params)]
        return rows, attempts
    for page in _pages(list(scopes)):
        rows += [dict(r._mapping) for r in await conn.execute(
            sa.select(*_raw_columns(ucc)).where(_in_scopes(ucc, page)))]
        attempts += [dict(r._mapping) for r in await conn.execute(
            sa.select(*_raw_columns(aa)).where(_in_scopes(aa, page)))]
    return rows, attempts


# -- the journal --------------------------------------------------------------------

async def add_chunk(conn: AsyncConnection, chunk_id: str, root: str, files: list[str], now_ms: int) -> None:
    await conn.execute(sa.insert(ch).values(chunk_id=chunk_id, state="pending", dir=root, files=files, counts={},
                                            dead_marks=0, created_at=now_ms, updated_at=now_ms))


async def chunks(conn: AsyncConnection, *, state: str | None = None, dead: bool = False,
                 ids: Iterable[str] | None = None) -> list:
    q = sa.select(ch).order_by(ch.c.chunk_id)
    if state is not None:
        q = q.where(ch.c.state == state)
    if dead:
        q = q.where(ch.c.dead_marks > 0)
    if ids is not None:
        q = q.where(ch.c.chunk_id.in_(sorted(set(ids))))
    return list(await conn.execute(q))


async def lock_chunk(conn: AsyncConnection, chunk_id: str):
    q = sa.select(ch).where(ch.c.chunk_id == chunk_id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return (await conn.execute(q)).first()


async def finish_chunk(conn: AsyncConnection, chunk_id: str, counts: dict, dead: bool, now_ms: int) -> None:
    await conn.execute(sa.update(ch).where(ch.c.chunk_id == chunk_id).values(
        state="done", counts=counts, dead_marks=ch.c.dead_marks + (1 if dead else 0), updated_at=now_ms))


async def drop_chunk(conn: AsyncConnection, chunk_id: str) -> None:
    await conn.execute(sa.delete(ch).where(ch.c.chunk_id == chunk_id))


async def mark_dead(conn: AsyncConnection, chunk_ids: Iterable[str], now_ms: int) -> None:
    """These chunks' files now hold rows that are no longer archived (erased, restored)."""
    ids = sorted(set(chunk_ids))
    if ids:
        await conn.execute(sa.update(ch).where(ch.c.chunk_id.in_(ids))
                           .values(dead_marks=ch.c.dead_marks + 1, updated_at=now_ms))


async def clear_dead(conn: AsyncConnection, chunk_id: str, seen_marks: int, now_ms: int) -> None:
    """Compacted: clean, unless it was marked again meanwhile."""
    await conn.execute(sa.update(ch).where(ch.c.chunk_id == chunk_id, ch.c.dead_marks == seen_marks)
                       .values(dead_marks=0, updated_at=now_ms))


# -- moving rows --------------------------------------------------------------------

async def hot_versions(conn: AsyncConnection, scopes: Sequence[Scope]) -> dict[tuple, int]:
    """The hot rows' versions in these scopes, locked (PostgreSQL) until the transaction ends."""
    out: dict[tuple, int] = {}
    if conn.dialect.name == "postgresql":
        return {tuple(r[:4]): r[4] for r in await conn.execute(_versions_pg, _scope_arrays(scopes))}
    for page in _pages(list(scopes)):
        q = sa.select(ucc.c.user_id, ucc.c.collection_id, ucc.c.context_id, ucc.c.content_id, ucc.c.version) \
            .where(_in_scopes(ucc, page)).order_by(*(ucc.c[k] for k in KEY))
        if conn.dialect.name == "postgresql":
            q = q.with_for_update()
        out.update({tuple(r[:4]): r[4] for r in await conn.execute(q)})
    return out


_del_row = sa.delete(ucc).where(*(ucc.c[k] == sa.bindparam(f"k_{k}") for k in KEY),
                                ucc.c.version == sa.bindparam("k_version"))
_del_attempt = sa.delete(aa).where(*(aa.c[k] == sa.bindparam(f"k_{k}") for k in KEY),
                                   aa.c.attempt_id == sa.bindparam("k_attempt_id"))


async def delete_hot(conn: AsyncConnection, rows: Sequence[dict], attempts: Sequence[dict]) -> None:
    if conn.dialect.name == "postgresql":
        if rows:
            await conn.execute(_del_rows_pg, _arrays("k", rows, (*KEY, "version")))
        if attempts:
            await conn.execute(_del_attempts_pg, _arrays("a", attempts, (*KEY, "attempt_id")))
        return
    if rows:
        await conn.execute(_del_row, [{f"k_{k}": r[k] for k in (*KEY, "version")} for r in rows])
    if attempts:
        await conn.execute(_del_attempt, [{f"k_{k}": r[k] for k in (*KEY, "attempt_id")} for r in attempts])


async def archived_in(conn: AsyncConnection, scopes: Sequence[Scope]) -> dict[tuple, object]:
    if conn.dialect.name == "postgresql":
        return {tuple(r[:4]): r for r in await conn.execute(_archived_pg, _scope_arrays(scopes))}
    out = {}
    for page in _pages(list(scopes)):
        out.update({tuple(r[:4]): r for r in await conn.execute(sa.select(arc).where(_in_scopes(arc, page)))})
    return out


async def replace_archived(conn: AsyncConnection, rows: Sequence[dict], existing: Iterable[tuple]) -> None:
    """Insert kept-aggregate rows (dicts with every column of archived_consumption), replacing
    those of the `existing` keys (a scope archived again after its learner came back)."""
    if not rows:
        return
    old = [dict(zip((f"k_{k}" for k in KEY), key)) for key in existing]
    if old:
        await conn.execute(_del_archived, old)
    if conn.dialect.name == "postgresql":
        await conn.execute(_insert_arc_pg, _arrays("v", rows, [c.name for c in arc.columns], _ARC_JSON))
    else:
        await conn.execute(sa.insert(arc), list(rows))


_del_archived = sa.delete(arc).where(*(arc.c[k] == sa.bindparam(f"k_{k}") for k in KEY))


async def archived_of_users(conn: AsyncConnection, users: Sequence[str], scope: Scope | None = None) -> list:
    q = sa.select(arc).where(arc.c.user_id.in_(list(users)))
    if scope is not None:
        q = q.where(arc.c.collection_id == scope.collection_id, arc.c.context_id == scope.context_id)
    return list(await conn.execute(q))


async def count_archived_users(conn: AsyncConnection) -> int:
    return (await conn.execute(sa.select(sa.func.count(sa.distinct(arc.c.user_id))))).scalar_one()


async def any_archived(conn: AsyncConnection) -> bool:
    return (await conn.execute(sa.select(arc.c.user_id).limit(1))).first() is not None


async def archived_users(conn: AsyncConnection, after: str | None, limit: int) -> list[str]:
    q = sa.select(arc.c.user_id).distinct().order_by(arc.c.user_id).limit(limit)
    if after is not None:
        q = q.where(arc.c.user_id > after)
    return [r[0] for r in await conn.execute(q)]


async def delete_archived(conn: AsyncConnection, rows: Sequence) -> None:
    if rows:
        await conn.execute(_del_archived, [{f"k_{k}": getattr(r, k) for k in KEY} for r in rows])


async def insert_hot(conn: AsyncConnection, rows: Sequence[dict], attempts: Sequence[dict]) -> None:
    """Put restored rows back; a hot row of the same key is newer (a view started after the archive)."""
    if rows:
        await conn.execute(insert(conn, ucc).on_conflict_do_nothing(), list(rows))
    if attempts:
        await conn.execute(insert(conn, aa).on_conflict_do_nothing(), list(attempts))

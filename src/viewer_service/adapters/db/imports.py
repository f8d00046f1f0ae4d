"""Repository for the Sunbird import: bulk merges of imported rows and the per-file checkpoints.

Consumption rows (the big table) merge in SQL: on PostgreSQL they are COPYed into a temporary
staging table and merged by one INSERT .. ON CONFLICT statement that also marks the changed
scopes; on SQLite by executemany in the caller's (large) transaction. The smaller tables are
merged in Python against the rows they meet, with the same monotonic rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from ...domain.sunbird_export import AGG_COLUMNS, ASSESS_COLUMNS, ENROL_COLUMNS, UCC_COLUMNS
from .tables import (assessment_aggregator as aa, collection, context as ctx, enrolment as en, import_checkpoint as cp,
                     user_activity_agg as agg)
from .sql import insert

# -- checkpoints ------------------------------------------------------------------


async def load_checkpoint(conn: AsyncConnection, source: str):
    return (await conn.execute(sa.select(cp).where(cp.c.source == source))).first()


async def save_checkpoint(conn: AsyncConnection, values: dict) -> None:
    stmt = insert(conn, cp).values(values)
    await conn.execute(stmt.on_conflict_do_update(index_elements=[cp.c.source],
                                                  set_={k: stmt.excluded[k] for k in values if k != "source"}))


async def known_collections(conn: AsyncConnection) -> set[str]:
    return {r[0] for r in await conn.execute(sa.select(collection.c.collection_id))}


# -- consumption: set-based merge ---------------------------------------------------

def _merge_sql(pg: bool, t, e) -> tuple[list[str], str]:
    """SET clauses and the "something changes" condition. t(col)/e(col): the stored and the
    incoming value. Status, progress, counts and latest times only grow; first times only shrink;
    the newest progress details (by their time) win; an equal row changes nothing."""
    def hi(a, b):
        return f"GREATEST({a}, {b})" if pg else f"max(coalesce({a}, {b}), coalesce({b}, {a}))"

    def lo(a, b):
        return f"LEAST({a}, {b})" if pg else f"min(coalesce({a}, {b}), coalesce({b}, {a}))"

    def gt(a, b):
        return f"({a} IS NOT NULL AND ({b} IS NULL OR {a} > {b}))"

    newer = f"({e('progress_details')} IS NOT NULL AND {gt(e('progress_details_ts'), t('progress_details_ts'))})"
    sets = [
        f"status = {hi(t('status'), e('status'))}",
        f"progress = {hi(t('progress'), e('progress'))}",
        f"progress_details = CASE WHEN {newer} THEN {e('progress_details')} ELSE {t('progress_details')} END",
        f"progress_details_ts = CASE WHEN {newer} THEN {e('progress_details_ts')} ELSE {t('progress_details_ts')} END",
        f"time_spent = {hi(t('time_spent'), e('time_spent'))}",
        f"view_count = {hi(t('view_count'), e('view_count'))}",
        f"first_access_time = {lo(t('first_access_time'), e('first_access_time'))}",
        f"last_access_time = {hi(t('last_access_time'), e('last_access_time'))}",
        f"last_completed_time = {lo(t('last_completed_time'), e('last_completed_time'))}",
        f"last_updated_time = {hi(t('last_updated_time'), e('last_updated_time'))}",
        f"version = {hi(t('version') + ' + 1', e('version'))}",
    ]
    changed = " OR ".join([
        f"{e('status')} > {t('status')}", f"{e('progress')} > {t('progress')}", newer,
        f"{e('time_spent')} > {t('time_spent')}", f"{e('view_count')} > {t('view_count')}",
        gt(t("first_access_time"), e("first_access_time")), gt(e("last_access_time"), t("last_access_time")),
        gt(t("last_completed_time"), e("last_completed_time")), gt(e("last_updated_time"), t("last_updated_time")),
    ])
    return sets, changed


_COLS = ", ".join(UCC_COLUMNS)
_KEY = "user_id, collection_id, context_id, content_id"
_SCOPE = "user_id, collection_id, context_id"
_pg_sets, _pg_changed = _merge_sql(True, lambda c: f"t.{c}", lambda c: f"EXCLUDED.{c}")
_MARK_PG = """
  INSERT INTO scope_dirty (user_id, collection_id, context_id, seq, marked_at, due_at, propagate)
  SELECT user_id, collection_id, context_id, 1, $1, $1, true FROM scopes WHERE $2 OR collection_id = ANY($3::text[])
  ON CONFLICT (user_id, collection_id, context_id) DO UPDATE SET seq = scope_dirty.seq + 1,
    marked_at = EXCLUDED.marked_at, propagate = true,
    due_at = CASE WHEN scope_dirty.claimed_by IS NULL AND EXCLUDED.due_at < scope_dirty.due_at
                  THEN EXCLUDED.due_at ELSE scope_dirty.due_at END
"""
_MERGE_UCC_PG = f"""
WITH up AS (
  INSERT INTO user_content_consumption AS t ({_COLS}) SELECT {_COLS} FROM import_ucc
  ON CONFLICT ({_KEY}) DO UPDATE SET {", ".join(_pg_sets)} WHERE {_pg_changed}
  RETURNING t.user_id, t.collection_id, t.context_id, (t.xmax = 0) AS ins
), scopes AS (SELECT DISTINCT {_SCOPE} FROM up),
marks AS ({_MARK_PG}),
repairs AS (INSERT INTO cache_repair ({_SCOPE}, created_at) SELECT {_SCOPE}, $1 FROM scopes ON CONFLICT DO NOTHING)
SELECT count(*) FILTER (WHERE ins), count(*) FILTER (WHERE NOT ins) FROM up
"""
_sl_sets, _sl_changed = _merge_sql(False, lambda c: c, lambda c: f"excluded.{c}")
_UPSERT_UCC_SQLITE = (f"INSERT INTO user_content_consumption ({_COLS}, attempts) "
                      f"VALUES ({', '.join('?' for _ in UCC_COLUMNS)}, 0) "
                      f"ON CONFLICT ({_KEY}) DO UPDATE SET {', '.join(_sl_sets)} WHERE {_sl_changed}")
_MARK_SQLITE = """
  INSERT INTO scope_dirty (user_id, collection_id, context_id, seq, marked_at, due_at, propagate)
  VALUES (?, ?, ?, 1, ?, ?, 1)
  ON CONFLICT (user_id, collection_id, context_id) DO UPDATE SET seq = seq + 1, marked_at = excluded.marked_at,
    propagate = 1, due_at = CASE WHEN claimed_by IS NULL AND excluded.due_at < due_at THEN excluded.due_at ELSE due_at END
"""


async def _driver(conn: AsyncConnection):
    return (await conn.get_raw_connection()).driver_connection


async def prepare(conn: AsyncConnection) -> None:
    """PostgreSQL: the session's staging table (emptied at every commit)."""
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql(
            "CREATE TEMP TABLE IF NOT EXISTS import_ucc (LIKE user_content_consumption INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS")


async def merge_consumption(conn: AsyncConnection, rows: Sequence[tuple], now_ms: int,
                            known: set[str] | None) -> tuple[int, int]:
    """Merge rows (UCC_COLUMNS order, one per key); mark the changed scopes for the worker when
    their collection is known (`known` None: every collection may be) and for cache repair.
    Returns (inserted, merged)."""
    if not rows:
        return 0, 0
    if conn.dialect.name == "postgresql":
        await conn.exec_driver_sql("SELECT 1")  # the transaction is open before the driver's COPY joins it
        raw = await _driver(conn)
        await raw.copy_records_to_table("import_ucc", records=rows, columns=UCC_COLUMNS)
        r = await raw.fetchrow(_MERGE_UCC_PG, now_ms, known is None, sorted(known or ()))
        return r[0], r[1]
    raw = await _driver(conn)
    # One upsert per row, the tuples as they are; the new rows are those past the largest rowid
    # before (one writer: this transaction).
    top = (await (await raw.execute("SELECT coalesce(max(rowid), 0) FROM user_content_consumption")).fetchone())[0]
    changed = (await raw.executemany(_UPSERT_UCC_SQLITE, rows)).rowcount
    inserted = (await (await raw.execute("SELECT count(*) FROM user_content_consumption WHERE rowid > ?",
                                         (top,))).fetchone())[0]
    merged = changed - inserted
    scopes = {r[:3] for r in rows}
    await raw.executemany(_MARK_SQLITE, [(*s, now_ms, now_ms) for s in sorted(scopes)
                                         if known is None or s[1] in known])
    await raw.executemany("INSERT OR IGNORE INTO cache_repair (user_id, collection_id, context_id, created_at) "
                          "VALUES (?, ?, ?, ?)", [(*s, now_ms) for s in scopes])
    return inserted, merged


# -- the smaller tables: merged in Python against the rows they meet ------------------

async def matching(conn: AsyncConnection, table: sa.Table, key_cols: Sequence[str], keys: Iterable[tuple],
                   lock: bool = True) -> list:
    """The stored rows whose `key_cols` are one of `keys` (locked on PostgreSQL)."""
    keys = list(set(keys))
    if not keys:
        return []
    cols = [table.c[k] for k in key_cols]
    if conn.dialect.name == "postgresql":
        # One statement text whatever the batch: arrays joined by unnest (a prepared statement reused).
        wanted = sa.func.unnest(*(sa.bindparam(f"k{i}", type_=ARRAY(sa.String)) for i in range(len(key_cols)))
                                ).table_valued(*(f"k{i}" for i in range(len(key_cols)))).render_derived("w")
        q = sa.select(table).join(wanted, sa.and_(*(c == wanted.c[f"k{i}"] for i, c in enumerate(cols))))
        if lock:
            q = q.with_for_update(of=table)
        return list(await conn.execute(q, {f"k{i}": [k[i] for k in keys] for i in range(len(key_cols))}))
    out = []
    for i in range(0, len(keys), 300):  # SQLite's bound-variable limit
        part = keys[i:i + 300]
        # user_id IN (...) lets SQLite search the primary key (see views.lock_rows).
        q = sa.select(table).where(cols[0].in_({k[0] for k in part}), sa.tuple_(*cols).in_(part))
        out.extend(await conn.execute(q))
    return out


async def existing(conn: AsyncConnection, table: sa.Table, key_cols: Sequence[str], keys: Iterable[tuple]) -> dict:
    """The stored rows of `keys`, by key."""
    return {tuple(getattr(r, k) for k in key_cols): r for r in await matching(conn, table, key_cols, keys)}


async def upsert(conn: AsyncConnection, table: sa.Table, columns: Sequence[str], key_cols: Sequence[str],
                 rows: Sequence[tuple]) -> None:
    """Insert `rows`, replacing the stored ones (the caller merged them)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key_cols)
        await _copy_insert(conn, table, columns, rows, f"({', '.join(key_cols)}) DO UPDATE SET {sets}")
        return
    stmt = insert(conn, table)
    stmt = stmt.on_conflict_do_update(index_elements=[table.c[k] for k in key_cols],
                                      set_={c: stmt.excluded[c] for c in columns if c not in key_cols})
    await conn.execute(stmt, [dict(zip(columns, r)) for r in rows])


async def insert_new(conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple]) -> None:
    """Insert `rows` believed new; one that appeared meanwhile (a live write) is left as it is."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        await _copy_insert(conn, table, columns, rows, "DO NOTHING")
        return
    await conn.execute(insert(conn, table).on_conflict_do_nothing(), [dict(zip(columns, r)) for r in rows])


async def _copy_insert(conn: AsyncConnection, table: sa.Table, columns: Sequence[str], rows: Sequence[tuple],
                       conflict: str) -> None:
    """PostgreSQL's bulk path: COPY into a session staging table shaped like `table`, then one
    INSERT .. SELECT .. ON CONFLICT."""
    stage = f"import_{table.name}"
    await conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {table.name} INCLUDING DEFAULTS) "
                               f"ON COMMIT DELETE ROWS")
    json_cols = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, sa.JSON)]
    if json_cols:  # asyncpg's binary COPY takes JSON as text
        rows = [tuple(orjson.dumps(v).decode() if i in json_cols and not isinstance(v, str) else v
                      for i, v in enumerate(r)) for r in rows]
    raw = await _driver(conn)
    await raw.copy_records_to_table(stage, records=rows, columns=list(columns))
    cols = ", ".join(columns)
    await raw.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage} ON CONFLICT {conflict}")
    await raw.execute(f"DELETE FROM {stage}")  # the next use in this transaction starts empty


_J = {"issued_certificates", "aggregates", "content_status", "agg_last_updated"}


def _decode(columns, row: tuple) -> tuple:
    """JSON text (as the mapping gives it) to values, for SQLAlchemy's JSON columns."""
    return tuple(orjson.loads(v) if c in _J and isinstance(v, str) else v for c, v in zip(columns, row))


ENROL_KEY = ("user_id", "collection_id", "context_id")
AGG_KEY = ("user_id", "collection_id", "context_id", "activity_type", "activity_id")


async def merge_enrolments(conn: AsyncConnection, rows: Sequence[tuple], now_ms: int) -> tuple[int, int, list]:
    """Returns (inserted, merged, the changed scopes)."""
    from ...domain.sunbird_export import merge_enrolment

    rows = [_decode(ENROL_COLUMNS, r) for r in rows]
    old = await existing(conn, en, ENROL_KEY, (r[:3] for r in rows))
    new, changed = [], []
    for r in rows:
        o = old.get(r[:3])
        if o is None:
            new.append(r)
            continue
        m = merge_enrolment(tuple(getattr(o, c) for c in ENROL_COLUMNS), r, now_ms)
        if m is not None:
            changed.append(m)
    await insert_new(conn, en, ENROL_COLUMNS, new)
    await upsert(conn, en, ENROL_COLUMNS, ENROL_KEY, changed)
    return len(new), len(changed), [r[:3] for r in new + changed]


async def merge_aggs(conn: AsyncConnection, rows: Sequence[tuple], now_ms: int) -> None:
    """Sunbird's figures for a collection, kept as its aggregate row (what a summary shows while
    the catalog does not know the collection); merged: status and progress never go down."""
    from ...domain.sunbird_export import merge_agg

    rows = [_decode(AGG_COLUMNS, r) for r in rows]
    old = await existing(conn, agg, AGG_KEY, (r[:5] for r in rows))
    out = []
    for r in rows:
        o = old.get(r[:5])
        m = r if o is None else merge_agg(tuple(getattr(o, c) for c in AGG_COLUMNS), r, now_ms)
        if m is not None:
            out.append(m)
    await upsert(conn, agg, AGG_COLUMNS, AGG_KEY, out)


async def ensure_contexts(conn: AsyncConnection, offers: dict[str, set[str]], now_ms: int) -> int:
    """Register the batches met, each offering the courses met with it (added to a known one's)."""
    if not offers:
        return 0
    known = {r.context_id: r for r in await conn.execute(sa.select(ctx).where(ctx.c.context_id.in_(list(offers))))}
    out = []
    for cid, courses in offers.items():
        r = known.get(cid)
        if r is None:
            doc = {"type": "batch", "collectionIds": sorted(courses), "importedFrom": "sunbird"}
            out.append({"context_id": cid, "type": "batch", "collection_ids": sorted(courses), "start_date": None,
                        "end_date": None, "document": doc, "updated_at": now_ms})
        elif not courses <= set(r.collection_ids):
            ids = list(r.collection_ids) + sorted(courses - set(r.collection_ids))
            out.append({"context_id": cid, "type": r.type, "collection_ids": ids, "start_date": r.start_date,
                        "end_date": r.end_date, "document": {**r.document, "collectionIds": ids},
                        "updated_at": now_ms})
    if out:
        stmt = insert(conn, ctx)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=[ctx.c.context_id],
            set_={c: stmt.excluded[c] for c in ("type", "collection_ids", "start_date", "end_date", "document",
                                                "updated_at")}), out)
    return len(out)


async def mark_scopes(conn: AsyncConnection, scopes: Iterable[tuple], now_ms: int, known: set[str] | None) -> None:
    from ...domain.scope import Scope
    from . import dirty

    await dirty.mark(conn, [Scope(*s) for s in scopes if known is None or s[1] in known], now_ms)


# -- the named tables, for the import's use case (services/imports.py) ------------------------

ASSESS_KEY = ("user_id", "collection_id", "context_id", "content_id", "attempt_id")


async def existing_attempts(conn: AsyncConnection, keys: Iterable[tuple]) -> dict:
    return await existing(conn, aa, ASSESS_KEY, keys)


async def insert_attempts(conn: AsyncConnection, rows: Sequence[tuple]) -> None:
    await insert_new(conn, aa, ASSESS_COLUMNS, rows)


async def replace_attempts(conn: AsyncConnection, rows: Sequence[tuple]) -> None:
    await upsert(conn, aa, ASSESS_COLUMNS, ASSESS_KEY, rows)


async def attempts_of(conn: AsyncConnection, contents: Iterable[tuple]) -> list:
    """The attempts of these (user, collection, context, content) keys."""
    return await matching(conn, aa, ASSESS_KEY[:4], contents, lock=False)


async def course_aggs(conn: AsyncConnection, keys: Iterable[tuple]) -> dict:
    return await existing(conn, agg, AGG_KEY, keys)


async def replace_course_aggs(conn: AsyncConnection, rows: Sequence[tuple]) -> None:
    await upsert(conn, agg, AGG_COLUMNS, AGG_KEY, rows)

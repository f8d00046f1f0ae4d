"""Archive files: Apache Parquet (zstd), one file per chunk, kind and month (docs/archive.md).

    <dir>/consumption/month=YYYY-MM/<chunk>.parquet   rows of user_content_consumption
    <dir>/attempts/month=YYYY-MM/<chunk>.parquet      rows of assessment_aggregator

The month is the enrolment's completion month (hive-style directories: any Parquet reader
filters on it). Rows are sorted by learner and written in row groups, so a reader that filters on
user_id (pyarrow, DuckDB, Spark) skips the row groups that cannot hold that learner.
A file is written to a temporary name, fsynced, renamed, and its directory fsynced: a file under its
final name is always complete."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterable

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from .db.tables import assessment_aggregator, user_content_consumption

ROW_GROUP = 8192
KINDS = {"consumption": user_content_consumption, "attempts": assessment_aggregator}
KEY = ("user_id", "collection_id", "context_id", "content_id")


def _arrow_type(c: sa.Column) -> pa.DataType:
    t = c.type
    if isinstance(t, sa.JSON):
        return pa.string()  # JSON text
    if isinstance(t, sa.BigInteger):
        return pa.int64()
    if isinstance(t, (sa.SmallInteger, sa.Integer)):
        return pa.int32()
    if isinstance(t, sa.Float):
        return pa.float64()
    if isinstance(t, sa.Boolean):
        return pa.bool_()
    return pa.string()


SCHEMAS = {kind: pa.schema([pa.field(c.name, _arrow_type(c), nullable=c.nullable) for c in t.columns])
           for kind, t in KINDS.items()}
JSON_COLUMNS = {kind: [c.name for c in t.columns if isinstance(c.type, sa.JSON)] for kind, t in KINDS.items()}


def rel_path(kind: str, month: str, chunk_id: str) -> str:
    return f"{kind}/month={month}/{chunk_id}.parquet"


def kind_of(rel: str) -> str:
    return rel.split("/", 1)[0]


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(root: str, rel: str, rows: list[dict]) -> None:
    """Write `rows` (dicts of the table's columns, JSON columns as JSON text) durably under `root/rel`."""
    kind = kind_of(rel)
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rows = sorted(rows, key=lambda r: tuple(r[k] for k in KEY) + (r.get("attempt_id") or "",))
    schema = SCHEMAS[kind]
    table = pa.table({f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in schema}, schema=schema)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pq.write_table(table, f, compression="zstd", row_group_size=ROW_GROUP)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(os.path.dirname(path))


def exists(root: str, rel: str) -> bool:
    return os.path.exists(os.path.join(root, rel))


def read(root: str, rel: str, users: Iterable[str] | None = None, parse_json: bool = False) -> list[dict]:
    """The file's rows (of `users` only, reading only the row groups that may hold them); JSON
    columns as text, or decoded with `parse_json`."""
    kind = kind_of(rel)
    filters = None if users is None else [("user_id", "in", sorted(set(users)))]
    table = pq.read_table(os.path.join(root, rel), filters=filters, schema=SCHEMAS[kind])
    rows = table.to_pylist()
    for c in JSON_COLUMNS[kind] if parse_json else ():
        for r in rows:
            if r[c] is not None:
                r[c] = orjson.loads(r[c])
    return rows


def rewrite(root: str, rel: str, keep: Callable[[dict], bool]) -> int:
    """Rewrite a file with only the rows `keep` accepts. Returns the number of rows dropped."""
    if not exists(root, rel):
        return 0
    rows = read(root, rel)
    kept = [r for r in rows if keep(r)]
    if len(kept) != len(rows):
        write(root, rel, kept)
    return len(rows) - len(kept)


def remove(root: str, rel: str) -> None:
    for p in (os.path.join(root, rel), os.path.join(root, rel) + ".tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(p)


@contextlib.contextmanager
def locked(root: str):
    """Serialise file rewrites between processes sharing the archive directory."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

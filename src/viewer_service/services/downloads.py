"""Summary downloads: a learner's summaries written to a file (CSV or JSON), served by token
until they expire.

The row is inserted before the file is written, so every file the service creates has a row
and the purge removes it, even after a crash mid-write. Files are written to `<name>.part`,
fsynced and renamed: a served name never holds half a file."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import secrets
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..adapters.db import downloads as repo
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..errors import DownloadNotFound, InvalidFormat

FORMATS = ("csv", "json")
CSV_COLUMNS = ("userId", "collectionId", "contextId", "collectionName", "enrolledDate", "enrolledDateIso",
               "active", "status", "progress", "completedOn", "completedOnIso", "leafNodesCount",
               "contentStatus", "assessmentStatus", "certificates")
CHUNK_BYTES = 64 * 1024  # written per thread hop: bounds memory and the number of hops
PURGE_BATCH = 200
_PART = ".part"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def download_url(user_id: str, token: str) -> str:
    return f"/v1/summary/download/{quote(user_id, safe='')}/files/{token}"


def file_name(user_id: str, fmt: str) -> str:
    return f"{user_id}_viewer_summary.{fmt}"


def check_format(fmt: str | None) -> str:
    f = (fmt or "json").lower()
    if f not in FORMATS:
        raise InvalidFormat("format must be csv or json", "format")
    return f


# -- encoders -------------------------------------------------------------------------------

def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _cell(v):
    """Spreadsheets run a cell that starts with = + - @ (or tab, CR) as a formula: a leading '
    makes it text. Only text cells can carry one; numbers are written as they are."""
    if isinstance(v, str) and v.startswith(_FORMULA_START):
        return "'" + v
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def _json_text(v) -> str:
    return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()


def csv_cells(values: Iterable) -> list:
    """Values as CSV cells: texts safe from spreadsheet formulas, booleans as true/false."""
    return [_cell(v) for v in values]


def iso_time(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC date-time (None stays None)."""
    return _iso(ms)


def csv_row(s: dict) -> list:
    c = s.get("collection") or {}
    return [_cell(v) for v in (
        s["userId"], s["collectionId"], s["contextId"], c.get("name"),
        s.get("enrolledDate"), _iso(s.get("enrolledDate")), s.get("active"), s.get("status"), s.get("progress"),
        s.get("completedOn"), _iso(s.get("completedOn")), c.get("leafNodesCount"),
        _json_text(s.get("contentStatus") or {}), _json_text(s.get("assessmentStatus") or {}),
        _json_text(s.get("issuedCertificates") or []),
    )]


class _Csv:
    def __init__(self, user_id: str, generated_at: int):
        self.buf = io.StringIO()
        self.writer = csv.writer(self.buf)  # RFC 4180: CRLF line ends, quotes where needed

    def _take(self) -> bytes:
        out = self.buf.getvalue().encode()
        self.buf.seek(0)
        self.buf.truncate()
        return out

    def head(self) -> bytes:
        self.writer.writerow(CSV_COLUMNS)
        return self._take()

    def item(self, s: dict) -> bytes:
        self.writer.writerow(csv_row(s))
        return self._take()

    def tail(self) -> bytes:
        return b""


class _Json:
    def __init__(self, user_id: str, generated_at: int):
        self.user_id, self.generated_at, self.first = user_id, generated_at, True

    def head(self) -> bytes:
        return b'{"userId":%s,"generatedAt":%d,"summary":[' % (orjson.dumps(self.user_id), self.generated_at)

    def item(self, s: dict) -> bytes:
        sep, self.first = (b"" if self.first else b","), False
        return sep + orjson.dumps(s, option=orjson.OPT_NON_STR_KEYS)

    def tail(self) -> bytes:
        return b"]}"


_ENCODERS = {"csv": _Csv, "json": _Json}


# -- files ----------------------------------------------------------------------------------

def _open_part(path: str):
    # O_EXCL: a token is never reused; 0o640: learners' data, readable by the service's group.
    return os.fdopen(os.open(path + _PART, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640), "wb")


def _finish(fh, path: str) -> None:
    fh.flush()
    os.fsync(fh.fileno())
    fh.close()
    os.replace(path + _PART, path)
    dfd = os.open(os.path.dirname(path), os.O_RDONLY)  # the rename itself survives a power cut
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _remove(paths: Iterable[str]) -> int:
    removed = 0
    for p in paths:
        for name in (p, p + _PART):
            try:
                os.unlink(name)
                removed += name == p
            except FileNotFoundError:
                pass
    return removed


async def remove_files(paths: Iterable[str]) -> int:
    """Remove download files (and any half-written part); the number of files removed."""
    paths = list(paths)
    return await asyncio.to_thread(_remove, paths) if paths else 0


async def erase_files(conn: AsyncConnection, user_id: str) -> list[str]:
    """Delete the learner's download rows in the caller's transaction; remove_files(paths) after commit."""
    return await repo.erase_files(conn, user_id)


async def purge_expired(engine: AsyncEngine, now_ms: int) -> int:
    """Delete downloads expired at `now_ms` and their files; the number deleted."""
    total = 0
    while True:
        # Files go before the commit: the rows are expired (never served again), and a crash
        # in between leaves rows that the next purge retries, never files without a row.
        async with engine.begin() as conn:
            paths = await repo.delete_expired(conn, now_ms, PURGE_BATCH)
            await remove_files(paths)
        total += len(paths)
        if len(paths) < PURGE_BATCH:
            return total


class DownloadService:
    def __init__(self, engine: AsyncEngine, summaries, *, directory: str, expiry_seconds: int,
                 clock: Callable[[], int] = now_ms):
        self.engine = engine
        self.tx = Transactions(engine)
        self.summaries = summaries
        self.directory = Path(directory).resolve()  # the row keeps an absolute path
        self.expiry_ms = expiry_seconds * 1000
        self.clock = clock

    async def create(self, user_id: str, fmt: str) -> str:
        """Write the learner's summaries to a new file; its url."""
        fmt = check_format(fmt)
        token = secrets.token_urlsafe(24)
        path = str(self.directory / f"{token}.{fmt}")
        created = self.clock()
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        await self._db(repo.insert, user_id, token, fmt, path, created, created + self.expiry_ms)
        try:
            await self._write(user_id, fmt, path, created)
            # An erase that committed meanwhile removed the row but found no file yet: take it back.
            if await self._db(repo.find, user_id, token, read=True) is None:
                raise DownloadNotFound("the learner's data was erased while the file was written", "userId")
        except BaseException:
            await self._discard(user_id, token, path)
            raise
        return download_url(user_id, token)

    async def open(self, user_id: str, token: str) -> tuple[str, str]:
        """The (path, format) of a live download of this learner, else DownloadNotFound."""
        row = await self._db(repo.find, user_id, token, read=True)
        if row is None or row.expires_at <= self.clock() or not await asyncio.to_thread(os.path.isfile, row.path):
            raise DownloadNotFound("no such download, or it has expired", "token")
        return row.path, row.format

    async def purge_expired(self) -> int:
        return await purge_expired(self.engine, self.clock())

    erase_files = staticmethod(erase_files)
    remove_files = staticmethod(remove_files)

    async def _write(self, user_id: str, fmt: str, path: str, generated_at: int) -> None:
        enc = _ENCODERS[fmt](user_id, generated_at)
        fh = await asyncio.to_thread(_open_part, path)
        try:
            chunk, size = [enc.head()], 0
            async for s in self.summaries.iter_summaries(user_id):
                b = enc.item(s)
                chunk.append(b)
                size += len(b)
                if size >= CHUNK_BYTES:
                    await asyncio.to_thread(fh.write, b"".join(chunk))
                    chunk, size = [], 0
            chunk.append(enc.tail())
            await asyncio.to_thread(fh.write, b"".join(chunk))
            await asyncio.to_thread(_finish, fh, path)
        finally:
            if not fh.closed:
                fh.close()

    async def _discard(self, user_id: str, token: str, path: str) -> None:
        # Best effort: what is left (after a crash, a cancel) the purge removes at expiry.
        try:
            await remove_files([path])
            await self._db(repo.delete, user_id, token)
        except Exception:
            pass

    def _db(self, fn, *args, read: bool = False):
        return (self.tx.read if read else self.tx.write)(lambda conn: fn(conn, *args))

"""`viewer-service import sunbird DIR`: the one-time migration from cqlsh COPY files (docs/migration.md).

One file per Sunbird table, streamed in large batches. Each batch is one transaction holding its
rows, the scopes it marks for the worker and the file's checkpoint (byte offset, counts), so an
import killed at any point resumes exactly where its last commit ended and a finished one
re-reads nothing. Rejected rows go to <table>.rejects.csv (fsynced before the commit that counts
them; a resumed run cuts the file back to the committed length)."""

from __future__ import annotations

import asyncio
import collections
import csv
import hashlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import imports as repo
from ..adapters.db.tables import assessment_aggregator as aa
from ..adapters.db.views import add_repairs, insert_rows, lock_rows, mark_dirty, update_rows
from ..clock import now_ms
from ..domain import cqlsh, sunbird_export as sunbird
from ..domain.assessments import StoredAttempt, best_attempt
from ..domain.scope import Scope
from ..domain.views import RowKey, Start, apply, next_version

log = logging.getLogger(__name__)
POOL_MIN_BYTES = 1 << 20  # smaller files are mapped in a thread: starting processes would cost more
ASSESS_KEY = ("user_id", "collection_id", "context_id", "content_id", "attempt_id")


@dataclass
class TableResult:
    table: str
    found: bool = True
    imported: int = 0
    merged: int = 0
    rejected: int = 0
    skipped: int = 0  # user_activity_agg rows that are not an imported enrolment's (units)
    rows_read: int = 0
    seconds: float = 0.0
    resumed_at: int = 0  # rows already committed by an earlier run
    note: str = ""


@dataclass
class Batch:
    rows: list = field(default_factory=list)
    rejects: list = field(default_factory=list)  # (fields, reason)
    errors: list = field(default_factory=list)  # text that is not CSV: ([], reason)
    end: int = 0
    read: int = 0
    skipped: int = 0


def file_id(path: Path) -> str:
    """Size and a hash of the head: a different export restarts from the beginning (safely: an
    import merges, so rows already there change nothing)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    return f"{path.stat().st_size}:{hashlib.sha1(head).hexdigest()}"


class Importer:
    def __init__(self, engine: AsyncEngine, directory: Path, *, mode: str = "strict", remote_catalog: bool = False,
                 batch_rows: int = 20_000, rejects_dir: Path | None = None, restart: bool = False,
                 jobs: int = 0, progress=None, clock: Callable[[], int] = now_ms):
        self.engine = engine
        self.dir = Path(directory)
        self.mode = mode
        self.remote_catalog = remote_catalog  # the worker can fetch any collection: mark every scope
        self.batch_rows = batch_rows
        self.rejects_dir = Path(rejects_dir) if rejects_dir else self.dir
        self.restart = restart
        self.jobs = jobs  # processes that map rows (0: a thread of this one)
        self.progress = progress
        self.clock = clock

    async def run(self) -> list[TableResult]:
        results = []
        self._pool = None
        if self.jobs > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_die_with_parent, initargs=(os.getpid(),))
        try:
            for table in sunbird.TABLES:
                path = self.dir / f"{table}.csv"
                if not path.is_file():
                    results.append(TableResult(table, found=False, note=f"no {path.name}: skipped"))
                    continue
                results.append(await self._table(table, path))
        finally:
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)
        return results

    async def _known(self) -> set[str] | None:
        if self.remote_catalog:
            return None
        async with self.engine.connect() as conn:
            return await repo.known_collections(conn)

    async def _table(self, table: str, path: Path) -> TableResult:
        started = time.monotonic()
        result = TableResult(table)
        fid = file_id(path)
        size = path.stat().st_size
        async with self.engine.connect() as conn:
            cp = await repo.load_checkpoint(conn, table)
        if cp is not None and cp.file_id == fid and not self.restart:
            start, rows_read, rejects_len = cp.byte_offset, cp.rows_read, cp.rejects_offset
            result.resumed_at = rows_read
        else:
            start, rows_read, rejects_len = 0, 0, 0
        known = await self._known()
        totals = {"imported": cp.imported if cp is not None and start else 0,
                  "merged": cp.merged if cp is not None and start else 0,
                  "rejected": cp.rejected if cp is not None and start else 0}
        if self.progress:
            self.progress.begin(table, size, start, rows_read)
        with open(path, "rb") as f:
            it = cqlsh.records(f, 0)
            first = next(it, None)
            if first is None or first[0] is None:
                result.note = "empty or unreadable header: skipped"
                return result
            try:
                header = sunbird.Header(table, first[0])
            except sunbird.Reject as e:
                result.note = f"{e}: skipped"
                return result
            if start == 0:
                start = first[1]
            else:
                it = cqlsh.records(f, start)
            rejects = self._open_rejects(table, header.names, rejects_len)
            try:
                ahead: collections.deque = collections.deque()
                reading = asyncio.Lock()  # FIFO: batches are read in order, one thread at a time
                pool = self._pool if size >= POOL_MIN_BYTES else None

                async def produce() -> Batch:
                    async with reading:
                        raw = await asyncio.to_thread(_read_raw, it, self.batch_rows)
                    if raw.read:
                        args = (table, header.names, self.mode, self.clock(), raw.rows)
                        raw.rows, raw.rejects = await (
                            asyncio.get_running_loop().run_in_executor(pool, map_batch, *args) if pool
                            else asyncio.to_thread(map_batch, *args))
                        raw.rejects = [*raw.errors, *raw.rejects]
                    return raw

                # Read and map the next batches (in worker processes) while the database merges this one.
                depth = (self.jobs if pool else 0) + 1
                ahead.extend(asyncio.ensure_future(produce()) for _ in range(depth))
                while True:
                    batch = await ahead.popleft()
                    if batch.read == 0:
                        break
                    ahead.append(asyncio.ensure_future(produce()))
                    for fields, reason in batch.rejects:
                        rejects.writerow([*fields, reason])
                    rejects.flush()
                    rows_read += batch.read
                    ins, mer = await self._write(table, batch, known, {
                        "source": table, "file_id": fid, "byte_offset": batch.end, "rows_read": rows_read,
                        "rejects_offset": rejects.size(), "imported": 0, "merged": 0, "rejected": 0}, totals)
                    result.imported += ins
                    result.merged += mer
                    result.rejected += len(batch.rejects)
                    result.skipped += batch.skipped
                    result.rows_read += batch.read
                    if self.progress:
                        self.progress.advance(table, batch.end, rows_read)
            finally:
                for task in ahead:
                    task.cancel()
                await asyncio.gather(*ahead, return_exceptions=True)
                rejects.close()
        result.seconds = time.monotonic() - started
        if self.progress:
            self.progress.end(table)
        return result

    def _open_rejects(self, table: str, names: list[str], committed: int) -> _Rejects:
        return _Rejects(self.rejects_dir / f"{table}.rejects.csv", names, committed)

    async def _write(self, table: str, batch: Batch, known, checkpoint: dict, totals: dict) -> tuple[int, int]:
        now = self.clock()
        for attempt in range(5):
            try:
                async with self.engine.begin() as conn:
                    if table == "user_content_consumption":
                        await repo.prepare(conn)
                        ins, mer = await repo.merge_consumption(conn, batch.rows, now, known)  # deduped by map_batch
                    elif table == "user_enrolments":
                        ins, mer = await self._enrolments(conn, batch.rows, now, known)
                    elif table == "assessment_aggregator":
                        ins, mer = await self._assessments(conn, batch.rows, now, known)
                    else:
                        ins, mer, batch.skipped = await self._activity_aggs(conn, batch.rows, now)
                    done = {"imported": totals["imported"] + ins, "merged": totals["merged"] + mer,
                            "rejected": totals["rejected"] + len(batch.rejects)}
                    await repo.save_checkpoint(conn, {**checkpoint, **done, "updated_at": now})
                totals.update(done)
                return ins, mer
            except Exception as e:  # noqa: BLE001 - a lost race with a live write: the batch again
                from .views import _retryable

                if attempt < 4 and _retryable(e):
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                raise
        raise AssertionError("unreachable")

    async def _enrolments(self, conn, rows, now, known) -> tuple[int, int]:
        enrolments = [e for e, _ in rows]
        offers: dict[str, set[str]] = {}
        for e in enrolments:
            if e[2] != e[1]:
                offers.setdefault(e[2], set()).add(e[1])
        await repo.ensure_contexts(conn, offers, now)
        ins, mer, changed = await repo.merge_enrolments(conn, enrolments, now)
        await repo.merge_aggs(conn, [a for _, a in rows], now)
        await repo.mark_scopes(conn, changed, now, known)
        return ins, mer

    async def _assessments(self, conn, rows, now, known) -> tuple[int, int]:
        rows = _dedupe(rows, 5, lambda a, b: b if b[7] > a[7] else a)
        old = await repo.existing(conn, aa, ASSESS_KEY, (r[:5] for r in rows))
        new, replaced = [], []
        for r in rows:
            o = old.get(r[:5])
            if o is None:
                new.append(r)
            elif r[7] > o.last_attempted_on:  # Sunbird's rule: only a strictly newer attempt replaces
                replaced.append((*r[:5], o.created_on, *r[6:]))
        cols = sunbird.ASSESS_COLUMNS
        await repo.insert_new(conn, aa, cols, [_json_questions(r) for r in new])
        await repo.upsert(conn, aa, cols, ASSESS_KEY, [_json_questions(r) for r in replaced])
        changed = new + replaced
        if changed:
            await self._best_scores(conn, {RowKey(*r[:4]): r[7] for r in changed}, now, known)
        return len(new), len(replaced)

    async def _best_scores(self, conn, touched: dict[RowKey, int], now: int, known) -> None:
        """The consumption rows' best attempt and count, as a live submit leaves them (created as
        started views when missing)."""
        stored: dict[RowKey, dict[str, StoredAttempt]] = {}
        for a in await repo.matching(conn, aa, ASSESS_KEY[:4], [tuple(k.__getattribute__(c) for c in ASSESS_KEY[:4])
                                                                 for k in touched], lock=False):
            stored.setdefault(RowKey(a.user_id, a.collection_id, a.context_id, a.content_id), {})[a.attempt_id] = \
                StoredAttempt(a.attempt_id, a.last_attempted_on, a.total_score, a.total_max_score)
        rows = {}
        keys = list(touched)
        for i in range(0, len(keys), 2000):  # bounded statements (SQLite's variable limit)
            rows.update(await lock_rows(conn, keys[i:i + 2000]))
        fresh, updated = [], []
        for k, ts in touched.items():
            best = best_attempt(stored.get(k, {}).values())
            if best is None:
                continue
            old = rows.get(k)
            base = apply(None, Start(k, ts), now) if old is None else replace(
                old, last_access_time=max(old.last_access_time or ts, ts), last_updated_time=now,
                version=next_version(old.version, now * 1000))
            v = replace(base, best_score=best.total_score, best_max_score=best.total_max_score,
                        best_attempt_id=best.attempt_id, attempts=len(stored[k]))
            (fresh if old is None else updated).append(v)
        await insert_rows(conn, fresh)
        await update_rows(conn, updated)
        scopes = {k.scope for k in touched}
        await mark_dirty(conn, [s for s in scopes if known is None or s.collection_id in known], now)
        await add_repairs(conn, scopes, now)

    async def _activity_aggs(self, conn, rows, now) -> tuple[int, int, int]:
        """Sunbird's figures (score:<content>, completedCount ...) added to the collection aggregate
        of an imported enrolment, where ours has no value of its own."""
        from ..adapters.db.tables import user_activity_agg as agg

        keys = [(u, c, b, "Course", c) for u, c, b, _ in rows]
        old = await repo.existing(conn, agg, repo.AGG_KEY, keys)
        missing = [k for k in keys if k not in old]
        if missing and conn.dialect.name == "postgresql":
            # A live worker may have been replacing a row while it was read (the read waited for it
            # and then skipped it): read those again, now committed.
            old.update(await repo.existing(conn, agg, repo.AGG_KEY, missing))
        out, skipped = [], 0
        for (u, c, b, figures), k in zip(rows, keys):
            o = old.get(k)
            if o is None:
                skipped += 1
                continue
            merged = {**figures, **o.aggregates}
            if merged != o.aggregates:
                out.append((*k, merged, o.content_status, o.agg_last_updated, o.progress, o.status,
                            o.completed_on, now))
        await repo.upsert(conn, agg, sunbird.AGG_COLUMNS, repo.AGG_KEY, out)
        return 0, len(out), skipped


def _die_with_parent(parent: int) -> None:
    """A mapping process must not outlive an import killed with -9 (nothing would stop it)."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _read_raw(it, limit: int) -> Batch:
    """Up to `limit` records as read (fields), and the offset after the last."""
    b = Batch()
    errors = []
    for fields, end, error in it:
        b.end = end
        if fields is None:
            errors.append(([], error))
        elif len(fields) == 1 and fields[0] == "":
            continue  # a blank line
        else:
            b.rows.append(fields)
        b.read += 1
        if b.read >= limit:
            break
    b.errors = errors
    return b


def map_batch(table: str, names: list[str], mode: str, now: int, records: list[list[str]]) -> tuple[list, list]:
    """Sunbird records to our rows, and the rejected ones with their reason (in a worker process:
    plain data in, plain data out)."""
    header = sunbird.Header(table, names)
    if table == "user_content_consumption":  # the big table: no dict per row
        convert = sunbird.consumption_mapper(header, mode, now)
    else:
        if table == "user_enrolments":
            fn = lambda r: sunbird.enrolment_row(r, now)  # noqa: E731
        elif table == "assessment_aggregator":
            fn = lambda r: sunbird.assessment_row(r, mode, now)  # noqa: E731
        else:
            fn = sunbird.activity_agg_row
        convert = lambda fields: fn(header.record(fields))  # noqa: E731
    rows, rejects = [], []
    for fields in records:
        try:
            rows.append(convert(fields))
        except sunbird.Reject as e:
            rejects.append((fields, str(e)))
    if table == "user_content_consumption":  # one row per key, here: off the thread that feeds the database
        rows = _dedupe(rows, 4, sunbird.merge_consumption)
    return rows, rejects


def _dedupe(rows: list[tuple], width: int, merge) -> list[tuple]:
    by_key: dict[tuple, tuple] = {}
    for r in rows:
        k = r[:width]
        by_key[k] = r if k not in by_key else merge(by_key[k], r)
    return list(by_key.values()) if len(by_key) != len(rows) else rows


def _json_questions(r: tuple) -> tuple:
    import orjson

    return (*r[:11], orjson.loads(r[11]))


class _Rejects:
    """<table>.rejects.csv: the rejected rows as read, plus a reason column, in cqlsh's dialect."""

    def __init__(self, path: Path, names: list[str], committed: int):
        self.path = path
        self.names = names
        self._f = None
        self._committed = committed if path.exists() else 0
        self._writer = None

    def _open(self):
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "a+b" if self.path.exists() else "w+b")
            f.truncate(self._committed)  # what a killed run wrote past its last commit goes
            f.seek(self._committed)
            import io

            self._f = f
            self._text = io.TextIOWrapper(f, encoding="utf-8", newline="", write_through=True)
            self._writer = csv.writer(self._text, cqlsh.Dialect)
            if self._committed == 0:
                self._writer.writerow([*self.names, "reason"])

    def writerow(self, row: list) -> None:
        self._open()
        self._writer.writerow(row)

    def flush(self) -> None:
        if self._f is not None:
            self._text.flush()
            self._f.flush()
            os.fsync(self._f.fileno())

    def size(self) -> int:
        return self._f.tell() if self._f is not None else self._committed

    def close(self) -> None:
        if self._f is not None:
            self._text.close()


def summary_lines(results: list[TableResult]) -> list[str]:
    lines = []
    for r in results:
        if not r.found or r.note:
            lines.append(f"{r.table}: {r.note}")
            continue
        extra = f", skipped {r.skipped} (not an enrolment's collection row)" if r.skipped else ""
        resumed = f", resumed after {r.resumed_at} rows" if r.resumed_at else ""
        rate = r.rows_read / r.seconds if r.seconds > 0 else 0
        lines.append(f"{r.table}: imported {r.imported}, merged {r.merged}, rejected {r.rejected}{extra} "
                     f"({r.rows_read} rows read in {r.seconds:.1f} s, {rate:,.0f} rows/s{resumed})")
    t = [sum(getattr(r, k) for r in results) for k in ("imported", "merged", "rejected")]
    lines.append(f"imported {t[0]}, merged {t[1]}, rejected {t[2]}")
    return lines

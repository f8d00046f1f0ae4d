"""Archiving: move the raw rows of long-completed enrolments out of the hot tables into Parquet
files, bring them back, and keep the files honest after erasures (docs/archive.md).

The database is the source of truth about what is archived: a row is archived when
archived_consumption references it (its chunk and version). Files may hold other rows (a chunk
whose rows changed while it was written, an erased or restored learner): such a chunk is marked
dead and `compact` rewrites its files with only the referenced rows.

Crash safety, in order: (1) the chunk is journalled 'pending' with its file names; (2) its files
are written and fsynced; (3) one transaction deletes the hot rows whose version is still the
written one, inserts their kept aggregates and marks the chunk 'done'. A crash before (3) leaves
every row hot (the files are not referenced); the next run completes a pending chunk whose files
are all there and abandons (deletes) one whose files are not."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters import archive_files as files
from ..adapters.db import archive as repo, repairs
from ..adapters.db.engine import reader
from ..clock import now_ms
from ..domain.scope import Scope

log = logging.getLogger(__name__)

KEY = repo.KEY


def _key(r) -> tuple:
    return tuple(r[k] for k in KEY) if isinstance(r, dict) else tuple(getattr(r, k) for k in KEY)


def _skey(s: Scope) -> tuple:
    return (s.user_id, s.collection_id, s.context_id)


def _month(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m")


def _new_chunk_id(now: int) -> str:
    return dt.datetime.fromtimestamp(now / 1000, dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]


class Archiver:
    def __init__(self, engine: AsyncEngine, root: str | None = None, *, clock: Callable[[], int] = now_ms,
                 chunk_scopes: int = 2000, pause_before_commit: float = 0.0,
                 forget: Callable[[list[Scope]], Awaitable] | None = None):
        self.engine = engine
        self.reader = reader(engine)
        self.root = os.path.abspath(root) if root else None
        self.clock = clock
        self.chunk_scopes = chunk_scopes
        self.pause_before_commit = pause_before_commit  # tests: a window to kill -9 between fsync and commit
        # Cached entries of moved scopes: with a shared cache (Redis) `forget` drops them at once;
        # without one, the serving processes' in-process caches drop them when they see the repair
        # marks written with the move.
        self.forget = forget

    # -- archive ------------------------------------------------------------------

    async def count_due(self, before_ms: int) -> int:
        async with self.reader.connect() as conn:
            return await repo.count_due(conn, before_ms)

    async def run(self, before_ms: int, on_chunk: Callable[[dict], None] | None = None) -> dict:
        """Archive every enrolment completed before `before_ms`. Resumes an interrupted run."""
        assert self.root is not None
        totals = {"scopes": 0, "rows": 0, "attempts": 0, "skipped": 0, "chunks": 0}
        recovered = await self.recover()
        for k in totals:
            totals[k] += recovered.get(k, 0)
        after = None
        while True:
            async with self.reader.connect() as conn:
                due = await repo.due_scopes(conn, before_ms, after, self.chunk_scopes)
                if not due:
                    break
                last = due[-1][1]
                after = (due[-1][0], last.user_id, last.collection_id, last.context_id)
                rows, attempts = await repo.raw_rows(conn, [s for _, s in due])
            done = await self._archive_chunk({s: m for m, s in due}, rows, attempts)
            for k in totals:
                totals[k] += done.get(k, 0)
            if on_chunk:
                on_chunk({**done, "due": len(due)})
        totals["compacted"] = await self.compact()
        return totals

    async def _archive_chunk(self, completed: dict[Scope, int], rows: list[dict], attempts: list[dict]) -> dict:
        if not rows:
            return {}
        now = self.clock()
        chunk_id = _new_chunk_id(now)
        by_file: dict[str, list[dict]] = defaultdict(list)
        for kind, items in (("consumption", rows), ("attempts", attempts)):
            for r in items:
                s = Scope(r["user_id"], r["collection_id"], r["context_id"])
                by_file[files.rel_path(kind, _month(completed[s]), chunk_id)].append(r)
        async with self.engine.begin() as conn:
            await repo.add_chunk(conn, chunk_id, self.root, sorted(by_file), now)
        await asyncio.to_thread(self._write_all, self.root, by_file)
        if self.pause_before_commit:
            await asyncio.sleep(self.pause_before_commit)
        return await self._commit(chunk_id, rows, attempts)

    @staticmethod
    def _write_all(root: str, by_file: dict[str, list[dict]]) -> None:
        with files.locked(root):
            for rel, items in by_file.items():
                files.write(root, rel, items)

    async def _commit(self, chunk_id: str, rows: list[dict], attempts: list[dict]) -> dict:
        """Step 3: move the rows out of the hot tables, for the scopes whose rows did not change
        since they were written; the others stay hot (and the chunk is marked dead)."""
        now = self.clock()
        by_scope: dict[Scope, list[dict]] = defaultdict(list)
        for r in rows:
            by_scope[Scope(r["user_id"], r["collection_id"], r["context_id"])].append(r)
        async with self.engine.begin() as conn:
            c = await repo.lock_chunk(conn, chunk_id)
            if c is None or c.state != "pending":
                return {}
            hot = await repo.hot_versions(conn, list(by_scope))
            good = {s for s, items in by_scope.items() if all(hot.get(_key(r)) == r["version"] for r in items)}
            moved = [r for r in rows if Scope(r["user_id"], r["collection_id"], r["context_id"]) in good]
            moved_attempts = [a for a in attempts if Scope(a["user_id"], a["collection_id"], a["context_id"]) in good]
            with_attempts: dict[tuple, set[str]] = defaultdict(set)
            for a in moved_attempts:
                with_attempts[_key(a)].add(a["attempt_id"])
            before = await repo.archived_in(conn, sorted(good, key=_skey))
            kept = []
            for r in moved:
                old = before.get(_key(r))
                chunks = list(old.attempt_chunks) if old is not None else []
                ids = set(old.attempt_ids) if old is not None else set()
                if _key(r) in with_attempts:
                    chunks.append(chunk_id)
                    ids.update(with_attempts[_key(r)])
                carried = r["carried_from"]  # JSON text, as the files hold it
                kept.append({**{k: r[k] for k in KEY}, **{k: r[k] for k in repo.ARC_DATA},
                             "carried_from": None if carried is None else orjson.loads(carried),
                             "chunk_id": chunk_id, "attempt_chunks": chunks, "attempt_ids": sorted(ids),
                             "archived_at": now})
            await repo.delete_hot(conn, moved, moved_attempts)
            await repo.replace_archived(conn, kept, [_key(r) for r in moved if _key(r) in before])
            if self.forget is None:
                await repairs.add(conn, good, now)
            counts = {"scopes": len(good), "rows": len(moved), "attempts": len(moved_attempts),
                      "skipped": len(by_scope) - len(good), "chunks": 1}
            await repo.finish_chunk(conn, chunk_id, counts, len(good) < len(by_scope), now)
        if self.forget is not None and good:
            await self.forget(sorted(good, key=_skey))
        return counts

    async def recover(self) -> dict:
        """Complete the pending chunks whose files are all written; abandon the others."""
        totals: dict[str, int] = defaultdict(int)
        async with self.reader.connect() as conn:
            pending = await repo.chunks(conn, state="pending")
        for c in pending:
            if all(files.exists(c.dir, rel) for rel in c.files):
                rows, attempts = await asyncio.to_thread(self._read_chunk, c)
                done = await self._commit(c.chunk_id, rows, attempts)
                log.info("archive: completed the interrupted chunk %s (%s)", c.chunk_id, done)
                for k, v in done.items():
                    totals[k] += v
            else:
                await asyncio.to_thread(self._remove_files, c)
                async with self.engine.begin() as conn:
                    await repo.drop_chunk(conn, c.chunk_id)
                log.info("archive: abandoned the interrupted chunk %s (its files were not all written)", c.chunk_id)
        return dict(totals)

    @staticmethod
    def _read_chunk(c, users: Iterable[str] | None = None, parse_json: bool = False) -> tuple[list[dict], list[dict]]:
        rows, attempts = [], []
        for rel in c.files:
            if not files.exists(c.dir, rel):
                continue
            (rows if files.kind_of(rel) == "consumption" else attempts).extend(
                files.read(c.dir, rel, users, parse_json))
        return rows, attempts

    @staticmethod
    def _remove_files(c) -> None:
        with files.locked(c.dir):
            for rel in c.files:
                files.remove(c.dir, rel)

    # -- restore ------------------------------------------------------------------

    async def restore(self, user_id: str | None, on_users: Callable[[int], None] | None = None) -> dict:
        """Bring a learner's archived rows (all learners' when None) back into the hot tables."""
        totals = {"users": 0, "rows": 0, "attempts": 0}
        if user_id is not None:
            batches = [[user_id]]
        else:
            batches = self._all_users()
        async for users in _aiter(batches):
            done = await self._restore_users(users)
            for k in totals:
                totals[k] += done[k]
            if on_users:
                on_users(len(users))
        totals["compacted"] = await self.compact()
        if user_id is None:
            totals["chunks_removed"] = await self._drop_empty_chunks()
        return totals

    async def _all_users(self):
        after = None
        while True:
            async with self.reader.connect() as conn:
                users = await repo.archived_users(conn, after, 200)
            if not users:
                return
            yield users
            after = users[-1]

    async def count_archived_users(self) -> int:
        async with self.reader.connect() as conn:
            return await repo.count_archived_users(conn)

    async def _restore_users(self, users: list[str]) -> dict:
        async with self.reader.connect() as conn:
            kept = await repo.archived_of_users(conn, users)
            ids = {r.chunk_id for r in kept} | {c for r in kept for c in r.attempt_chunks}
            found = {c.chunk_id: c for c in await repo.chunks(conn, ids=ids)}
        if not kept:
            return {"users": 0, "rows": 0, "attempts": 0}
        by_key = {_key(r): r for r in kept}
        rows, attempts = [], {}
        for c in found.values():
            crow, catt = await asyncio.to_thread(self._read_chunk, c, users, True)
            rows += [r for r in crow if (k := by_key.get(_key(r))) is not None
                     and k.chunk_id == c.chunk_id and k.version == r["version"]]
            for a in catt:
                k = by_key.get(_key(a))
                if k is not None and c.chunk_id in k.attempt_chunks:
                    old = attempts.get((_key(a), a["attempt_id"]))
                    if old is None or a["last_attempted_on"] > old["last_attempted_on"]:
                        attempts[(_key(a), a["attempt_id"])] = a
        missing = len(kept) - len(rows)
        if missing:
            # A referenced row not in its file: the files were changed by hand or lost. Keep the
            # kept aggregate rather than drop the learner's status.
            raise RuntimeError(f"archive: {missing} archived rows of {users[0]}... are missing from their files "
                               f"under {sorted({c.dir for c in found.values()})}; nothing restored")
        now = self.clock()
        async with self.engine.begin() as conn:
            await repo.insert_hot(conn, rows, list(attempts.values()))
            await repo.delete_archived(conn, kept)
            await repo.mark_dead(conn, ids, now)
            # The cache says "archived": drop it (marks too: a fill racing this commit is dropped again).
            scopes = {Scope(*_key(r)[:3]) for r in kept}
            await repairs.add(conn, scopes, now)
        if self.forget is not None:
            await self.forget(sorted(scopes, key=_skey))
        return {"users": len({r.user_id for r in kept}), "rows": len(rows), "attempts": len(attempts)}

    async def _drop_empty_chunks(self) -> int:
        """After a full restore: chunks no archived row references any more go, files and all."""
        async with self.reader.connect() as conn:
            if await repo.any_archived(conn):
                return 0
            done = await repo.chunks(conn, state="done")
        for c in done:
            await asyncio.to_thread(self._remove_files, c)
            async with self.engine.begin() as conn:
                await repo.drop_chunk(conn, c.chunk_id)
        return len(done)

    # -- compaction (after erasures, restores, skipped scopes) ---------------------------

    async def compact(self, chunk_ids: Iterable[str] | None = None) -> int:
        """Rewrite dead chunks' files with only the rows still archived. Returns rows dropped."""
        async with self.reader.connect() as conn:
            dead = await repo.chunks(conn, dead=True, ids=chunk_ids)
        dropped = 0
        for c in dead:
            if c.state != "done":
                continue  # a pending chunk is the next run's: completed or abandoned whole
            dropped += await self._compact_chunk(c)
        return dropped

    async def _compact_chunk(self, c) -> int:
        root = c.dir
        dropped = 0
        # The lock first, then the references: a rewrite sees every change committed before it.
        lock = await asyncio.to_thread(_acquire, root)
        try:
            async with self.reader.connect() as conn:
                marks = (await repo.lock_chunk(conn, c.chunk_id)).dead_marks
            for rel in c.files:
                if not files.exists(root, rel):
                    continue
                present = await asyncio.to_thread(files.read, root, rel)
                users = sorted({r["user_id"] for r in present})
                refs = {}
                async with self.reader.connect() as conn:
                    for i in range(0, len(users), repo.PAGE):
                        refs.update({_key(r): r for r in await repo.archived_of_users(conn, users[i:i + repo.PAGE])})
                if files.kind_of(rel) == "consumption":
                    def keep(r, refs=refs):
                        k = refs.get(_key(r))
                        return k is not None and k.chunk_id == c.chunk_id and k.version == r["version"]
                else:
                    def keep(r, refs=refs):
                        k = refs.get(_key(r))
                        return k is not None and c.chunk_id in k.attempt_chunks
                kept = [r for r in present if keep(r)]
                if len(kept) != len(present):
                    await asyncio.to_thread(files.write, root, rel, kept)
                    dropped += len(present) - len(kept)
            async with self.engine.begin() as conn:
                await repo.clear_dead(conn, c.chunk_id, marks, self.clock())
        finally:
            _release(lock)
        return dropped


async def _aiter(it):
    if hasattr(it, "__aiter__"):
        async for x in it:
            yield x
    else:
        for x in it:
            yield x


# The directory's flock held across awaits (files.locked is for one thread's block of work).
def _acquire(root: str):
    import fcntl

    os.makedirs(root, exist_ok=True)
    f = open(os.path.join(root, ".lock"), "a+")  # noqa: SIM115 - closed by _release
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _release(f) -> None:
    import fcntl

    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()

"""Context modes and carry-forward inside a caller's transaction (docs/modes.md).

Copy is a pull: the target enrolment takes the qualifying completions of other scopes. It runs
at enrolment and in the transaction of every write that completes a content (`on_completed`),
so both are read-after-write. The worker runs it again whenever it recomputes the enrolment,
which it does after every completion elsewhere that may qualify (`dependents`): a safety net.
The pull is idempotent (the target rows are locked, and a carried row is never overwritten).
Move runs once, at enrolment, and empties the source scope."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from sqlalchemy.ext.asyncio import AsyncConnection

from ..adapters.db import assessments as attempts_repo, dirty, enrolments as enrol_repo, progress, views as views_repo
from ..adapters.db.locks import lock_learners
from ..clock import now_ms
from ..domain.carry import (COPY_MODES, CarryRule, Target, carried_row, is_earned, merge_rows, pick_sources,
                            provenance, qualifies, rule_for)
from ..domain.collections import Collection
from ..domain.scope import ContextMode, Scope
from ..domain.views import COMPLETED, ContentView, RowKey


@dataclass
class Outcome:
    rows: list[ContentView] = field(default_factory=list)  # written: for the cache
    emptied: list[Scope] = field(default_factory=list)  # rows moved away: drop from the cache
    moved_from: list[Scope] = field(default_factory=list)

    def add(self, other: "Outcome") -> None:
        self.rows += other.rows
        self.emptied += other.emptied
        self.moved_from += other.moved_from


def _scope(r) -> Scope:
    return Scope(r.user_id, r.collection_id, r.context_id)


class Carry:
    def __init__(self, mode: ContextMode | str, default: CarryRule, catalog, clock: Callable[[], int] = now_ms):
        self.mode = ContextMode(mode)
        self.default = default
        self.catalog = catalog
        self.clock = clock

    def target(self, e) -> Target:
        """The carry target of an enrolment row (from enrolments.enrolments_with_contexts)."""
        return Target(_scope(e), e.enrolled_date, e.start_date, e.end_date,
                      rule_for(self.default, e.context_document))

    async def target_of(self, conn: AsyncConnection, s: Scope, enrolments=None) -> Target | None:
        """`enrolments`: the learner's active ones with contexts, when the caller has them."""
        if enrolments is None:
            enrolments = await enrol_repo.enrolments_with_contexts(conn, s.user_id)
        for e in enrolments:
            if _scope(e) == s:
                return self.target(e)
        return None

    # -- enrolment --------------------------------------------------------------

    async def on_enrol(self, conn: AsyncConnection, s: Scope, collection: Collection | None) -> Outcome:
        """The post-enrol action: copy or move progress into the (active) enrolment `s`. The
        caller holds the scope lock of `s`."""
        if self.mode.shared_by_contexts or collection is None:
            return Outcome()  # an unknown collection is carried when the worker first recomputes it
        t = await self.target_of(conn, s)
        if t is None:
            return Outcome()
        if t.rule.mode in COPY_MODES:
            return await self.pull(conn, t, collection, "enrol")
        if t.rule.mode == "move":
            return await self._move(conn, t, collection)
        return Outcome()

    async def pull(self, conn: AsyncConnection, t: Target, collection: Collection, trigger: str,
                   only: Scope | None = None, label: dict | None = None, mark: bool = True,
                   contents: set[str] | None = None) -> Outcome:
        """Copy the qualifying completions of the collection's leaves (those in `contents` when
        given) into `t` (idempotent); from scope `only` when given. `label` amends the provenance."""
        if trigger == "enrol":
            # A write completing one of the learner's contents either committed before this read
            # (and is read here), or waits for this enrolment to commit and then carries into it
            # (on_completed). Either way the completion is carried before both have answered.
            await lock_learners(conn, [t.scope.user_id], shared=False)
        candidates = await views_repo.user_rows(conn, t.scope.user_id, contents or collection.leaf_nodes)
        if only is not None:
            candidates = [v for v in candidates if v.key.scope in (only, t.scope)]
        done_here = {v.key.content_id for v in candidates if v.key.scope == t.scope and v.status == COMPLETED}
        picks = {cid: v for cid, v in pick_sources(t, candidates).items() if cid not in done_here}
        if not picks:
            return Outcome()
        now = self.clock()
        s = t.scope
        keys = {cid: RowKey(s.user_id, s.collection_id, s.context_id, cid) for cid in picks}
        existing = await views_repo.lock_rows(conn, keys.values())
        created, updated = [], []
        for cid, src in sorted(picks.items()):
            key = keys[cid]
            prov = {**provenance(t.rule.mode, trigger, src, t.rule, now), **(label or {})}
            row = carried_row(key, existing.get(key), src, prov, now)
            if row is None:
                continue
            (updated if key in existing else created).append(row)
            if row.best_attempt_id == src.best_attempt_id:
                await attempts_repo.copy_attempt(conn, src.key, key, src.best_attempt_id)
        await views_repo.insert_rows(conn, created)
        await views_repo.update_rows(conn, updated)
        if mark:  # the worker, recomputing `s` itself, needs no new mark
            await dirty.mark(conn, [s], now)
        return Outcome(rows=created + updated)

    async def _move(self, conn: AsyncConnection, t: Target, collection: Collection) -> Outcome:
        """Move the progress of the same collection's other ongoing enrolments into `t`."""
        out = Outcome()
        now = self.clock()
        for e in await enrol_repo.enrolments_with_contexts(conn, t.scope.user_id):
            src = _scope(e)
            if e.collection_id != t.scope.collection_id or src == t.scope:
                continue
            if e.end_date is not None and e.end_date < t.enrolled_date:
                continue  # that batch is over: not an ongoing one
            rows = await views_repo.lock_scope(conn, src)
            last = max((v.last_access_time or v.last_completed_time or 0 for v in rows), default=None)
            if not rows or not qualifies(t, last):
                continue
            if e.status == COMPLETED:
                # Its certificate rests on it: a completed enrolment is never emptied; its
                # completions are copied instead.
                keep = Target(t.scope, t.enrolled_date, t.start, t.end, CarryRule("copy-collection"))
                out.add(await self.pull(conn, keep, collection, "enrol", only=src,
                                        label={"mode": "move", "sourceKept": True, "rule": t.rule.as_json()}))
                continue
            out.add(await self._move_scope(conn, src, t, rows, now))
        if out.rows or out.moved_from:
            await dirty.mark(conn, [t.scope], now)
        return out

    async def _move_scope(self, conn: AsyncConnection, src: Scope, t: Target, rows: list[ContentView],
                          now: int) -> Outcome:
        s = t.scope
        keys = {v.key.content_id: RowKey(s.user_id, s.collection_id, s.context_id, v.key.content_id) for v in rows}
        existing = await views_repo.lock_rows(conn, keys.values())
        created, updated = [], []
        for v in rows:
            key = keys[v.key.content_id]
            prov = provenance("move", "enrol", v, t.rule, now)
            if v.carried_from is not None:
                prov["previously"] = v.carried_from  # it had been carried into the source: keep the chain
            merged = merge_rows(existing.get(key), replace(v, key=key), now, prov)
            (updated if key in existing else created).append(merged)
        await views_repo.insert_rows(conn, created)
        await views_repo.update_rows(conn, updated)
        await attempts_repo.move_attempts(conn, src, s)
        await views_repo.delete_scope(conn, src)
        await progress.delete_aggs(conn, src)
        await enrol_repo.set_moved(conn, src, {"contextId": s.context_id, "collectionId": s.collection_id, "at": now}, now)
        return Outcome(rows=created + updated, emptied=[src], moved_from=[src])

    # -- continuous -------------------------------------------------------------

    async def on_completed(self, conn: AsyncConnection, completed: list[ContentView]) -> list[ContentView]:
        """Read-after-write for continuous copy. `completed`: rows this transaction has just made
        complete (written already). Each is copied into every active enrolment of its learner
        whose copy rule accepts it, in the caller's transaction; returns the carried rows, for
        the caller's cache write, and to mark their scopes dirty with its own (one statement, in
        key order). Plain updates never get here; a completion costs one indexed
        read of the learner's enrolments (the enrol path keeps them in its transaction), and more
        only for enrolments with a copy rule whose collection has the content. A collection
        known only to the remote catalog is left to the worker, which also re-checks everything
        later (the completion marked its scope dirty)."""
        done = [v for v in completed if v.status == COMPLETED and is_earned(v)]
        if self.mode.shared_by_contexts or not done:
            return []
        out: list[ContentView] = []
        users = sorted({v.key.user_id for v in done})
        await lock_learners(conn, users, shared=True)  # then an enrolment being made is seen
        enrolments = await enrol_repo.enrolments_of(conn, users)
        # In key order, as every other writer locks rows: concurrent batches queue, not deadlock.
        for e in sorted(enrolments, key=lambda e: (e.user_id, e.collection_id, e.context_id)):
            t = self.target(e)
            if t.rule.mode not in COPY_MODES:
                continue
            mine = {v.key.content_id for v in done if v.key.user_id == e.user_id and v.key.scope != t.scope}
            c = await self.catalog.get_in(conn, e.collection_id) if mine else None
            wanted = mine.intersection(c.leaf_nodes) if c is not None else None
            if wanted:
                out += (await self.pull(conn, t, c, "completion", contents=wanted, mark=False)).rows
        return out

    async def dependents(self, conn: AsyncConnection, s: Scope, own: list[ContentView],
                         enrolments=None) -> list[Scope]:
        """Active enrolments to recompute because the rows stored in `s` (`own`) changed: those
        that count them (collection and content modes) or may copy their completions (strict)."""
        if self.mode is ContextMode.STRICT:
            done = {v.key.content_id for v in own if v.status == COMPLETED and is_earned(v)}
        elif self.mode is ContextMode.CONTENT:
            done = {v.key.content_id for v in own if v.key.content_id == v.key.collection_id}
        else:
            done = {v.key.content_id for v in own} if s.context_id == s.collection_id else set()
        if not done:
            return []
        out = []
        if enrolments is None:
            enrolments = await enrol_repo.enrolments_with_contexts(conn, s.user_id)
        for e in enrolments:
            es = _scope(e)
            if es == s:
                continue
            if self.mode is ContextMode.STRICT:
                if self.target(e).rule.mode not in COPY_MODES:
                    continue
            elif self.mode is ContextMode.COLLECTION:
                if e.collection_id == s.collection_id:
                    out.append(es)
                continue
            c = await self.catalog.get(e.collection_id)
            if c is not None and done.intersection(c.leaf_nodes):
                out.append(es)
        return out

    async def rows_for(self, conn: AsyncConnection, s: Scope, collection: Collection | None) -> list[ContentView]:
        leaves = collection.leaf_nodes if collection is not None else ()
        return await views_repo.mode_rows(conn, s, self.mode, leaves)


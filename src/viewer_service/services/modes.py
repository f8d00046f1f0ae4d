"""The instance's context mode: recorded with the data, checked at start-up, and converted by
`viewer-service db migrate-mode` (docs/modes.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import archive, dirty, modes as repo, settings
from ..clock import now_ms
from ..domain.carry import merge_rows
from ..domain.scope import MODES, ContextMode
from ..domain.views import RowKey

SETTING = "context_mode"
UNRECORDED = "strict"  # data written before modes were recorded was written in strict mode


class ModeMismatch(RuntimeError):
    pass


async def ensure_mode(engine: AsyncEngine, mode: ContextMode, clock: Callable[[], int] = now_ms) -> None:
    """Record the mode on first start; refuse a different one afterwards."""
    mode = str(mode)  # as recorded
    async with engine.begin() as conn:
        recorded = await settings.get(conn, SETTING)
        if recorded is None:
            recorded = UNRECORDED if await repo.has_rows(conn) else mode
            await settings.put(conn, SETTING, recorded, clock())
    if recorded != mode:
        raise ModeMismatch(
            f"this database was written in context mode {recorded!r}, but VIEWER_CONTEXT_MODE is {mode!r}. "
            f"To convert the data, stop every serve and worker process and run "
            f"`VIEWER_CONTEXT_MODE={mode} viewer-service db migrate-mode {mode}`; "
            f"or set VIEWER_CONTEXT_MODE={recorded}.")


def _rekey(k: RowKey, mode: ContextMode) -> RowKey:
    """Where a stored row lives in `mode`. A row on its own stays; strict keeps every key."""
    if not mode.shared_by_contexts or k.content_id == k.collection_id:
        return k
    s = mode.resolve(k.user_id, k.content_id, k.collection_id, k.context_id)
    return RowKey(s.user_id, s.collection_id, s.context_id, k.content_id)


async def migrate_mode(engine: AsyncEngine, mode: str, clock: Callable[[], int] = now_ms) -> dict[str, int]:
    """Convert the stored progress to `mode` in one transaction: rows re-keyed as the mode
    resolves them (records of one content merged), attempts re-keyed, every enrolment queued for
    recompute, aggregates of scopes that no longer hold progress dropped. The caller must clear
    the shared cache afterwards. Returns counts."""
    if mode not in MODES:
        raise ValueError(f"unknown context mode {mode!r}; one of {', '.join(MODES)}")
    mode = ContextMode(mode)
    now = clock()
    counts = {"rows": 0, "rekeyed": 0, "merged": 0, "attempts": 0, "enrolments": 0}
    async with engine.begin() as conn:
        recorded = await settings.get(conn, SETTING) or UNRECORDED
        if recorded != mode and await archive.any_archived(conn):
            raise ModeMismatch("archived rows are keyed by the current mode: run `viewer-service archive restore "
                               "--all` first (docs/archive.md)")
        if recorded != mode:
            for user in await repo.learners(conn):
                await _migrate_user(conn, user, mode, now, counts)
            enrolled = await repo.enrolled_scopes(conn)
            counts["enrolments"] = len(enrolled)
            # Aggregates are recomputed from the re-keyed rows; those of scopes that are neither
            # an enrolment nor hold rows any more would show stale summaries.
            await repo.drop_aggregates(conn)
            await dirty.clear(conn)
            await dirty.mark(conn, [*enrolled, *await repo.holding_scopes(conn)], now)
        await settings.put(conn, SETTING, str(mode), now)
    counts["from"] = recorded  # type: ignore[assignment]
    return counts


async def _migrate_user(conn, user: str, mode: ContextMode, now: int, counts: dict) -> None:
    rows = await repo.learner_rows(conn, user)
    counts["rows"] += len(rows)
    moved = [v for v in rows if _rekey(v.key, mode) != v.key]
    if not moved:
        return
    kept = {v.key: v for v in rows if _rekey(v.key, mode) == v.key}
    out = dict(kept)
    for v in sorted(moved, key=lambda v: (v.key.collection_id, v.key.context_id, v.key.content_id)):
        k = _rekey(v.key, mode)
        out[k] = merge_rows(out.get(k), replace(v, key=k), now)
        counts["rekeyed"] += 1
    counts["merged"] += len(moved) + len(kept) - len(out)
    await repo.replace_learner_rows(conn, user, list(out.values()))
    attempts = await repo.learner_attempts(conn, user)
    if attempts:
        seen, keep = set(), []
        for a in attempts:
            k = _rekey(RowKey(user, a["collection_id"], a["context_id"], a["content_id"]), mode)
            a.update(collection_id=k.collection_id, context_id=k.context_id)
            ident = (k.collection_id, k.context_id, k.content_id, a["attempt_id"])
            if ident not in seen:
                seen.add(ident)
                keep.append(a)
        await repo.replace_learner_attempts(conn, user, keep)
        counts["attempts"] += len(keep)

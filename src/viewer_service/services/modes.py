"""The instance's context mode: recorded with the data, checked at start-up, and converted by
`viewer-service db migrate-mode` (docs/modes.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import carry as repo
from ..adapters.db.tables import (archived_consumption, assessment_aggregator as aa, enrolment as en, scope_dirty,
                                  user_activity_agg as agg, user_content_consumption as ucc)
from ..adapters.db.views import insert_rows, mark_dirty, to_row
from ..clock import now_ms
from ..domain.carry import merge_rows
from ..domain.scope import MODES, Scope, resolve_scope
from ..domain.views import RowKey

SETTING = "context_mode"
UNRECORDED = "strict"  # data written before modes were recorded was written in strict mode


class ModeMismatch(RuntimeError):
    pass


async def ensure_mode(engine: AsyncEngine, mode: str, clock: Callable[[], int] = now_ms) -> None:
    """Record the mode on first start; refuse a different one afterwards."""
    async with engine.begin() as conn:
        recorded = await repo.get_setting(conn, SETTING)
        if recorded is None:
            recorded = UNRECORDED if await _has_data(conn) else mode
            await repo.set_setting(conn, SETTING, recorded, clock())
    if recorded != mode:
        raise ModeMismatch(
            f"this database was written in context mode {recorded!r}, but VIEWER_CONTEXT_MODE is {mode!r}. "
            f"To convert the data, stop every serve and worker process and run "
            f"`VIEWER_CONTEXT_MODE={mode} viewer-service db migrate-mode {mode}`; "
            f"or set VIEWER_CONTEXT_MODE={recorded}.")


async def _has_data(conn) -> bool:
    return (await conn.execute(sa.select(ucc.c.user_id).limit(1))).first() is not None


def _rekey(k: RowKey, mode: str) -> RowKey:
    """Where a stored row lives in `mode`. A row on its own stays; strict keeps every key."""
    if mode == "strict" or k.content_id == k.collection_id:
        return k
    s = resolve_scope(k.user_id, k.content_id, k.collection_id, k.context_id, mode)
    return RowKey(s.user_id, s.collection_id, s.context_id, k.content_id)


async def migrate_mode(engine: AsyncEngine, mode: str, clock: Callable[[], int] = now_ms) -> dict[str, int]:
    """Convert the stored progress to `mode` in one transaction: rows re-keyed as the mode
    resolves them (records of one content merged), attempts re-keyed, every enrolment queued for
    recompute, aggregates of scopes that no longer hold progress dropped. The caller must clear
    the shared cache afterwards. Returns counts."""
    if mode not in MODES:
        raise ValueError(f"unknown context mode {mode!r}; one of {', '.join(MODES)}")
    now = clock()
    counts = {"rows": 0, "rekeyed": 0, "merged": 0, "attempts": 0, "enrolments": 0}
    async with engine.begin() as conn:
        recorded = await repo.get_setting(conn, SETTING) or UNRECORDED
        if recorded != mode and (await conn.execute(sa.select(archived_consumption.c.user_id).limit(1))).first():
            raise ModeMismatch("archived rows are keyed by the current mode: run `viewer-service archive restore "
                               "--all` first (docs/archive.md)")
        if recorded != mode:
            users = [r[0] for r in await conn.execute(sa.select(ucc.c.user_id).distinct())]
            for user in users:
                await _migrate_user(conn, user, mode, now, counts)
            enrolled = [Scope(*r) for r in await conn.execute(
                sa.select(en.c.user_id, en.c.collection_id, en.c.context_id))]
            counts["enrolments"] = len(enrolled)
            # Aggregates are recomputed from the re-keyed rows; those of scopes that are neither
            # an enrolment nor hold rows any more would show stale summaries.
            await conn.execute(sa.delete(agg))
            await conn.execute(sa.delete(scope_dirty))
            holding = [Scope(*r) for r in await conn.execute(
                sa.select(ucc.c.user_id, ucc.c.collection_id, ucc.c.context_id).distinct())]
            await mark_dirty(conn, [*enrolled, *holding], now)
        await repo.set_setting(conn, SETTING, mode, now)
    counts["from"] = recorded  # type: ignore[assignment]
    return counts


async def _migrate_user(conn, user: str, mode: str, now: int, counts: dict) -> None:
    rows = [to_row(r) for r in await conn.execute(sa.select(ucc).where(ucc.c.user_id == user))]
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
    await conn.execute(sa.delete(ucc).where(ucc.c.user_id == user))
    await insert_rows(conn, list(out.values()))
    attempts = [dict(r._mapping) for r in await conn.execute(sa.select(aa).where(aa.c.user_id == user))]
    if attempts:
        seen, keep = set(), []
        for a in attempts:
            k = _rekey(RowKey(user, a["collection_id"], a["context_id"], a["content_id"]), mode)
            a.update(collection_id=k.collection_id, context_id=k.context_id)
            ident = (k.collection_id, k.context_id, k.content_id, a["attempt_id"])
            if ident not in seen:
                seen.add(ident)
                keep.append(a)
        await conn.execute(sa.delete(aa).where(aa.c.user_id == user))
        await conn.execute(sa.insert(aa), keep)
        counts["attempts"] += len(keep)

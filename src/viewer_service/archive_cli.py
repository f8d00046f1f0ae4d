"""`viewer-service archive --completed-before DATE [--dir DIR]` and `archive restore --user ID | --all`
(docs/archive.md): a progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from .config import Settings
from .reporting import CountProgress

log = logging.getLogger("viewer_service.archive")


def add_parser(sub) -> None:
    a = sub.add_parser("archive", help="move the raw rows of long-completed enrolments into Parquet files "
                                       "(docs/archive.md); `archive restore` brings them back")
    a.add_argument("--completed-before", metavar="DATE",
                   help="archive enrolments completed before this date (YYYY-MM-DD, UTC, or an ISO time)")
    a.add_argument("--dir", help="archive directory (default VIEWER_ARCHIVE_DIR, ./viewer-archive)")
    a.add_argument("--chunk-scopes", type=int, default=2000, help="enrolments per chunk (one transaction each)")
    a.set_defaults(func=_archive)
    asub = a.add_subparsers(dest="archive_command")
    r = asub.add_parser("restore", help="bring archived rows back into the hot tables")
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="one learner's rows")
    who.add_argument("--all", action="store_true", help="every archived row")
    r.set_defaults(func=_restore)


def parse_date(text: str) -> int:
    """Epoch milliseconds of a date (midnight UTC) or an ISO time (UTC unless it says otherwise)."""
    try:
        if len(text) == 10:
            d = dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), dt.UTC)
        else:
            d = dt.datetime.fromisoformat(text)
            if d.tzinfo is None:
                d = d.replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValueError(f"--completed-before: {text!r} is not a date (YYYY-MM-DD) or an ISO time") from None
    return int(d.timestamp() * 1000)


def _schema_problem(settings: Settings) -> str | None:
    """Like serve: an embedded SQLite file is migrated here; a PostgreSQL schema must be current."""
    from .adapters.db.migrate import schema_problem, upgrade

    if settings.is_sqlite:
        upgrade(settings.database_url)
    return schema_problem(settings.database_url, will_upgrade=False)


def _prepare(settings: Settings) -> str | None:
    from .bootstrap import mode_problem

    problem = _schema_problem(settings)
    if problem:
        return problem
    if settings.context_mode.shared_by_contexts:
        return (f"archiving supports the strict context mode only (this instance: {settings.context_mode}); "
                f"see docs/archive.md")

    return asyncio.run(mode_problem(settings, unreachable_ok=False))


def _settings() -> Settings | None:
    """This instance's settings, or None (the problem printed) when it cannot archive."""
    settings = Settings()
    problem = _prepare(settings)
    if problem:
        print(f"viewer-service: {problem}", file=sys.stderr)
        return None
    return settings


@asynccontextmanager
async def _stores(settings: Settings) -> AsyncIterator[tuple]:
    """The database and the shared cache (moved scopes are dropped from it), closed on the way out."""
    from .bootstrap import database, shared_cache

    engine = database(settings, 2)
    cache = shared_cache(settings)
    try:
        yield engine, cache
    finally:
        if cache is not None:
            await cache.close()
        await engine.dispose()


def _archive(args: argparse.Namespace) -> int:
    from .services.archive import Archiver

    if not args.completed_before:
        print("viewer-service archive: --completed-before DATE is required (or `archive restore`)", file=sys.stderr)
        return 2
    try:
        before = parse_date(args.completed_before)
    except ValueError as e:
        print(f"viewer-service archive: {e}", file=sys.stderr)
        return 2
    if args.chunk_scopes < 1:
        print("viewer-service archive: --chunk-scopes must be at least 1", file=sys.stderr)
        return 2
    settings = _settings()
    if settings is None:
        return 2
    root = args.dir or settings.archive_dir

    async def run() -> dict:
        async with _stores(settings) as (engine, cache):
            archiver = Archiver(engine, root, chunk_scopes=args.chunk_scopes, forget=cache and cache.invalidate,
                                pause_before_commit=float(os.environ.get("VIEWER_ARCHIVE_PAUSE_BEFORE_COMMIT") or 0))
            with CountProgress("archive", await archiver.count_due(before), "enrolments", log) as progress:
                return await archiver.run(before, lambda c: progress.advance(c["due"], f", {c.get('rows', 0)} rows"))

    t = asyncio.run(run())
    print(f"archived {t['scopes']} enrolments: {t['rows']} consumption rows, {t['attempts']} attempts into "
          f"{root}" + (f" ({t['skipped']} skipped: changed while archiving, archived next run)" if t["skipped"] else "")
          + (f"; {t['compacted']} stale file rows dropped" if t.get("compacted") else ""))
    return 0


def _restore(args: argparse.Namespace) -> int:
    from .services.archive import Archiver

    settings = _settings()
    if settings is None:
        return 2

    async def run() -> dict:
        async with _stores(settings) as (engine, cache):
            archiver = Archiver(engine, forget=cache and cache.invalidate)
            total = 1 if args.user else await archiver.count_archived_users()
            with CountProgress("restore", total, "learners", log) as progress:
                return await archiver.restore(None if args.all else args.user, progress.advance)

    try:
        t = asyncio.run(run())
    except RuntimeError as e:
        print(f"viewer-service: {e}", file=sys.stderr)
        return 1
    print(f"restored {t['users']} learners: {t['rows']} consumption rows, {t['attempts']} attempts"
          + (f"; {t['chunks_removed']} archive chunks removed" if t.get("chunks_removed") else ""))
    return 0

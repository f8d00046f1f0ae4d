"""`viewer-service serve | worker | db upgrade | db migrate-mode`."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .adapters.db.migrate import upgrade

    settings = Settings()
    migrate = settings.is_sqlite or args.migrate
    if args.workers > 1 and not settings.redis_url:
        print("viewer-service: --workers > 1 needs a shared cache; set VIEWER_REDIS_URL "
              "(the in-process cache cannot see other processes' writes)", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.is_sqlite:
        print("viewer-service: --workers > 1 needs PostgreSQL (VIEWER_DATABASE_URL)", file=sys.stderr)
        return 2
    if _refused_schema(settings, migrate):
        return 2
    if migrate:
        upgrade(settings.database_url)
    mismatch = _mode_mismatch(settings)
    if mismatch:
        print(f"viewer-service: {mismatch}", file=sys.stderr)
        return 2
    uvicorn.run("viewer_service.api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False)
    return 0


def _refused_schema(settings: Settings, migrate: bool) -> bool:
    from .adapters.db.migrate import schema_problem

    problem = schema_problem(settings.database_url, will_upgrade=migrate)
    if problem:
        print(f"viewer-service: {problem}", file=sys.stderr)
    return problem is not None


def _mode_mismatch(settings: Settings) -> str | None:
    """Checked before uvicorn starts, for a clear message instead of a failed lifespan."""
    import asyncio

    from .adapters.db.engine import make_engine
    from .services.modes import ModeMismatch, ensure_mode

    async def check() -> str | None:
        engine = make_engine(settings.database_url, 1)
        try:
            await ensure_mode(engine, settings.context_mode)
        except ModeMismatch as e:
            return str(e)
        except Exception:  # noqa: BLE001 - unreachable or not migrated: the service says so itself
            return None
        finally:
            await engine.dispose()
        return None

    return asyncio.run(check())


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .adapters.cache.null import NullCache
    from .adapters.db.engine import make_engine
    from .adapters.db.migrate import upgrade
    from .api.app import make_cache
    from .services.catalog import Catalog
    from .services.modes import ModeMismatch, ensure_mode
    from .services.views import ViewService
    from .worker import build_worker

    settings = Settings()
    if _refused_schema(settings, args.migrate):
        return 2
    if args.migrate:
        upgrade(settings.database_url)

    async def run() -> None:
        engine = make_engine(settings.database_url, settings.db_pool_size, settings.db_pre_ping)
        await ensure_mode(engine, settings.context_mode)
        catalog = Catalog(engine, fetch_url=settings.catalog_url, max_document_bytes=settings.max_body_bytes)
        # Publishes the rows this worker carries: into the shared cache, or, without one, as
        # repair marks that make the serving process drop those scopes from its own cache.
        cache = make_cache(settings) if settings.redis_url else NullCache()
        views = ViewService(engine, cache, max_skew_ms=settings.max_clock_skew_seconds * 1000)
        background = build_worker(settings, engine, catalog, views)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await background.start()
        logging.getLogger(__name__).info("worker %s running", background.worker.worker_id)
        try:
            await stop.wait()
        finally:
            await background.close()
            await catalog.close()
            await cache.close()
            await engine.dispose()

    try:
        asyncio.run(run())
    except ModeMismatch as e:
        print(f"viewer-service: {e}", file=sys.stderr)
        return 2
    return 0


def _db(args: argparse.Namespace) -> int:
    from .adapters.db.migrate import upgrade

    upgrade(Settings().database_url, args.revision)
    print(f"database at revision {args.revision}")
    return 0


def _migrate_mode(args: argparse.Namespace) -> int:
    import asyncio

    from .adapters.db.engine import make_engine
    from .adapters.db.migrate import upgrade
    from .api.app import make_cache
    from .services.modes import migrate_mode

    settings = Settings()
    if settings.context_mode != args.mode:
        print(f"viewer-service: set VIEWER_CONTEXT_MODE={args.mode} too, so that the service starts "
              f"in the mode the data is converted to", file=sys.stderr)
        return 2
    upgrade(settings.database_url)

    async def run() -> dict:
        engine = make_engine(settings.database_url, settings.db_pool_size)
        try:
            counts = await migrate_mode(engine, args.mode)
        finally:
            await engine.dispose()
        if settings.redis_url:  # every cached scope may now be keyed differently
            cache = make_cache(settings)
            try:
                counts["cache_keys_dropped"] = await cache.clear()
            finally:
                await cache.close()
        return counts

    counts = asyncio.run(run())
    print(f"context mode {counts.pop('from')} -> {args.mode}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(prog="viewer-service", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the HTTP service")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1)
    s.add_argument("--migrate", action="store_true", help="apply migrations first (always done on SQLite)")
    s.add_argument("--log-level", default="info")
    s.set_defaults(func=_serve)
    w = sub.add_parser("worker", help="run the aggregation worker and the event dispatcher (any number of them)")
    w.add_argument("--migrate", action="store_true", help="apply migrations first")
    w.set_defaults(func=_worker)
    d = sub.add_parser("db", help="database commands")
    dsub = d.add_subparsers(dest="db_command", required=True)
    u = dsub.add_parser("upgrade", help="apply schema migrations")
    u.add_argument("revision", nargs="?", default="head")
    u.set_defaults(func=_db)
    m = dsub.add_parser("migrate-mode", help="convert the stored progress to another context mode "
                                             "(stop every serve and worker first)")
    m.add_argument("mode", choices=["strict", "content", "collection"])
    m.set_defaults(func=_migrate_mode)
    args = p.parse_args(argv)
    from pydantic import ValidationError

    try:
        return args.func(args)
    except ValidationError as e:  # a VIEWER_* setting: say which, without a traceback
        problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors())
        print(f"viewer-service: invalid configuration: {problems}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

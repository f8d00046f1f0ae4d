"""`viewer-service serve | worker | db upgrade`."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .adapters.db.migrate import upgrade

    settings = Settings()
    if args.workers > 1 and not settings.redis_url:
        print("viewer-service: --workers > 1 needs a shared cache; set VIEWER_REDIS_URL "
              "(the in-process cache cannot see other processes' writes)", file=sys.stderr)
        return 2
    if args.workers > 1 and settings.is_sqlite:
        print("viewer-service: --workers > 1 needs PostgreSQL (VIEWER_DATABASE_URL)", file=sys.stderr)
        return 2
    if settings.is_sqlite or args.migrate:
        upgrade(settings.database_url)
    uvicorn.run("viewer_service.api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from .adapters.db.engine import make_engine
    from .adapters.db.migrate import upgrade
    from .services.catalog import Catalog
    from .worker import build_worker

    settings = Settings()
    if args.migrate:
        upgrade(settings.database_url)

    async def run() -> None:
        engine = make_engine(settings.database_url, settings.db_pool_size)
        catalog = Catalog(engine, fetch_url=settings.catalog_url, max_document_bytes=settings.max_body_bytes)
        background = build_worker(settings, engine, catalog)
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
            await engine.dispose()

    asyncio.run(run())
    return 0


def _db(args: argparse.Namespace) -> int:
    from .adapters.db.migrate import upgrade

    upgrade(Settings().database_url, args.revision)
    print(f"database at revision {args.revision}")
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
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

"""viewer-service: learners' content progress, assessment scores and collection progress.

Configuration comes from VIEWER_* environment variables (README.md, "Configuration")."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from . import __version__
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
    from . import logs

    scratch = _multiprocess_metrics_dir() if args.workers > 1 and settings.metrics else None
    app, options = "viewer_service.api.app:create_app", dict(
        factory=True, host=args.host, port=args.port, workers=args.workers, log_level=args.log_level,
        access_log=False, log_config=logs.config(settings.log_format, args.log_level))
    try:
        if args.workers > 1:
            from . import reuseport

            return reuseport.run(uvicorn.Config(app, **options))  # each process its own socket
        uvicorn.run(app, **options)
    finally:
        if scratch:
            import shutil

            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def _refused_schema(settings: Settings, migrate: bool) -> bool:
    from .adapters.db.migrate import schema_problem

    problem = schema_problem(settings.database_url, will_upgrade=migrate)
    if problem:
        print(f"viewer-service: {problem}", file=sys.stderr)
    return problem is not None


def _multiprocess_metrics_dir() -> str | None:
    """Several serving processes share their metrics through files in PROMETHEUS_MULTIPROC_DIR
    (set before they start). Returns the directory made for this run, to be removed after it."""
    from .metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    given = os.environ.get(MULTIPROC_ENV)
    if given:
        prepare_multiprocess_dir(given)
        return None
    import tempfile

    os.environ[MULTIPROC_ENV] = made = tempfile.mkdtemp(prefix="viewer-metrics-")
    return made


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
        if args.metrics_port:
            from prometheus_client import start_http_server

            start_http_server(args.metrics_port, args.metrics_host)
        logging.getLogger(__name__).info("viewer-service %s worker %s running: backend=%s cache=%s context_mode=%s "
                                         "carry_forward=%s metrics=%s", __version__, background.worker.worker_id,
                                         "sqlite" if settings.is_sqlite else "postgresql",
                                         "redis" if settings.redis_url else "none", settings.context_mode,
                                         settings.carry_forward,
                                         f"{args.metrics_host}:{args.metrics_port}" if args.metrics_port else "off")
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
    from .services.modes import ModeMismatch, migrate_mode

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

    try:
        counts = asyncio.run(run())
    except ModeMismatch as e:
        print(f"viewer-service: {e}", file=sys.stderr)
        return 2
    print(f"context mode {counts.pop('from')} -> {args.mode}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _default_jobs() -> int:
    """Mapping processes only where cores are left over: the database needs one and the importing
    process (reading, COPY) another. Measured on 2 cores: extra processes made it slower."""
    return max(0, min((os.cpu_count() or 1) - 2, 4))


def _import_sunbird(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from .adapters.db.engine import make_engine
    from .adapters.db.migrate import upgrade
    from .reporting import Progress
    from .services.imports import Importer, summary_lines
    from .services.modes import ModeMismatch, ensure_mode
    from sqlalchemy.exc import SQLAlchemyError

    settings = Settings()
    if not Path(args.dir).is_dir():
        print(f"viewer-service: {args.dir} is not a directory", file=sys.stderr)
        return 2
    if settings.is_sqlite:
        upgrade(settings.database_url)
    if _refused_schema(settings, migrate=False):
        return 2

    async def run():
        engine = make_engine(settings.database_url, 2)
        progress = Progress()
        try:
            await ensure_mode(engine, settings.context_mode)
            importer = Importer(engine, Path(args.dir), mode=settings.context_mode,
                                remote_catalog=bool(settings.catalog_url), batch_rows=args.batch_rows,
                                rejects_dir=Path(args.rejects_dir) if args.rejects_dir else None,
                                restart=args.restart, progress=progress,
                                jobs=args.jobs if args.jobs is not None else _default_jobs())
            return await importer.run()
        finally:
            progress.close()
            await engine.dispose()

    try:
        results = asyncio.run(run())
    except ModeMismatch as e:
        print(f"viewer-service: {e}", file=sys.stderr)
        return 2
    except (OSError, SQLAlchemyError) as e:  # the database went away, a disk filled: resumable
        first = str(e).splitlines()[0][:500] if str(e) else type(e).__name__
        print(f"viewer-service: import stopped: {first}; what was committed stays, run the same "
              f"command again to resume", file=sys.stderr)
        return 1
    for line in summary_lines(results):
        print(line)
    read_any = any(r.found and not r.note for r in results)
    if not read_any:
        print(f"viewer-service: no Sunbird export could be read in {args.dir}", file=sys.stderr)
    return 0 if read_any else 1



class _Help(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default, and keeps the descriptions' line breaks."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="viewer-service", description=__doc__, formatter_class=_Help)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(parent, name: str, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        return parent.add_parser(name, help=help_, description=description or help_, formatter_class=_Help)

    s = command(sub, "serve", "run the HTTP service (in the foreground; Ctrl-C stops it)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    s.add_argument("--port", type=int, default=8080, help="port to listen on")
    s.add_argument("--workers", type=int, default=1,
                   help="serving processes; above 1 needs PostgreSQL and Redis (VIEWER_DATABASE_URL, VIEWER_REDIS_URL)")
    s.add_argument("--migrate", action="store_true", help="apply migrations first (always done on SQLite)")
    s.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="least severe log level printed (VIEWER_LOG_FORMAT=json for JSON lines)")
    s.set_defaults(func=_serve)
    w = command(sub, "worker", "run the aggregation worker and the event dispatcher (any number of them; "
                               "in the foreground)")
    w.add_argument("--migrate", action="store_true", help="apply migrations first")
    w.add_argument("--metrics-port", type=int, default=0,
                   help="serve this worker's Prometheus metrics on this port (0: off)")
    w.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    w.set_defaults(func=_worker)
    d = command(sub, "db", "database commands: upgrade, migrate-mode")
    dsub = d.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    u = command(dsub, "upgrade", "apply schema migrations")
    u.add_argument("revision", nargs="?", default="head", help="the Alembic revision to upgrade to")
    u.set_defaults(func=_db)
    m = command(dsub, "migrate-mode", "convert the stored progress to another context mode "
                                      "(stop every serve and worker first)")
    m.add_argument("mode", choices=["strict", "content", "collection"],
                   help="the mode to convert to (set VIEWER_CONTEXT_MODE to it too)")
    m.set_defaults(func=_migrate_mode)
    i = command(sub, "import", "one-time data migration (docs/migration.md)")
    isub = i.add_subparsers(dest="import_source", metavar="SOURCE", required=True)
    sb = command(isub, "sunbird", "import the cqlsh COPY files of Sunbird's tables from DIR (resumable, idempotent)")
    sb.add_argument("dir", help="the directory holding user_content_consumption.csv, user_enrolments.csv, "
                                "assessment_aggregator.csv and optionally user_activity_agg.csv")
    sb.add_argument("--batch-rows", type=int, default=20_000, help="rows per transaction")
    sb.add_argument("--rejects-dir", help="where <table>.rejects.csv go (default: DIR)")
    sb.add_argument("--restart", action="store_true", help="ignore the checkpoints and read every file again "
                                                           "(safe: rows already imported change nothing)")
    sb.add_argument("--jobs", type=int, help="processes that parse rows next to the database writes "
                                              "(default: the CPU count less 2, at most 4; 0: none)")
    sb.set_defaults(func=_import_sunbird)
    from .archive_cli import add_parser as add_archive_parser
    add_archive_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    from . import logs

    fmt = os.environ.get("VIEWER_LOG_FORMAT", "text").lower()
    logs.configure("json" if fmt == "json" else "text")
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:  # no command: say what there is
        p.print_help()
        return 0
    from pydantic import ValidationError

    try:
        return args.func(args)
    except ValidationError as e:  # a VIEWER_* setting: say which, without a traceback
        problems = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'settings'}: {x['msg']}" for x in e.errors())
        print(f"viewer-service: invalid configuration: {problems}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The composition root: the one place where engines, caches, services and background loops are
made and wired. `serve` (api/app.py's lifespan), `viewer-service worker` and the CLI commands
(import, archive, db migrate-mode) take what they need from here; nothing else constructs them."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncEngine

from . import metrics
from .adapters.db.engine import make_engine
from .config import Settings
from .services.catalog import Catalog
from .services.modes import ModeMismatch, ensure_mode
from .services.views import ViewService

if TYPE_CHECKING:  # imported where they are made: `worker` and the CLI load only what they use
    from .adapters.cache.base import ScopeCache
    from .services.assessments import AssessmentService
    from .services.downloads import DownloadService
    from .services.enrolments import EnrolmentService
    from .services.erase import EraseService
    from .services.reports import ReportService
    from .services.summaries import SummaryService
    from .services.sunbird import SunbirdService
    from .worker import Background

log = logging.getLogger(__name__)


def database(settings: Settings, pool_size: int | None = None) -> AsyncEngine:
    """The database engine; the CLI's one-shot commands ask for a small pool."""
    if pool_size is not None:
        return make_engine(settings.database_url, pool_size)
    return make_engine(settings.database_url, settings.db_pool_size, settings.db_pre_ping)


def scope_cache(settings: Settings) -> ScopeCache:
    """The scope cache: Redis when configured, else in this process."""
    if settings.redis_url:
        from .adapters.cache.redis import RedisCache

        return RedisCache(settings.redis_url, settings.redis_prefix, settings.cache_ttl_seconds,
                          cluster=settings.redis_cluster)
    from .adapters.cache.memory import MemoryCache

    return MemoryCache(settings.cache_max_scopes)


def shared_cache(settings: Settings) -> ScopeCache | None:
    """The serving processes' shared cache (Redis) for a process that only drops or publishes
    scopes in it; None when each serving process keeps its own."""
    return scope_cache(settings) if settings.redis_url else None


async def mode_problem(settings: Settings, *, unreachable_ok: bool = True) -> str | None:
    """Why the database's recorded context mode refuses this instance's, else None. A database
    that cannot be asked raises, unless `unreachable_ok` (the command says so itself later)."""
    e = database(settings, 1)
    try:
        await ensure_mode(e, settings.context_mode)
    except ModeMismatch as mismatch:
        return str(mismatch)
    except Exception:
        if unreachable_ok:
            return None
        raise
    finally:
        await e.dispose()
    return None


def background(settings: Settings, engine: AsyncEngine, catalog: Catalog,
               views: ViewService | None = None) -> Background:
    """The aggregation worker, the event dispatcher and their wake-ups, as `serve` (embedded) or
    `viewer-service worker` runs them. `views`: the serving process's ViewService when the worker
    runs inside it; a separate worker process makes its own, to publish carried rows to the cache."""
    from .adapters.db.notify import Listener
    from .adapters.events import make_sink
    from .services.carry import Carry
    from .services.outbox import OutboxDispatcher
    from .worker import AggregationWorker, Background

    sink = make_sink(settings.event_sink, settings.redis_url, settings.redis_prefix, settings.redis_cluster)
    worker_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    lease_ms = int(settings.worker_lease_seconds * 1000)
    listens = engine.dialect.name == "postgresql"
    poll = settings.worker_listen_poll_seconds if listens else settings.worker_poll_seconds
    dispatcher = OutboxDispatcher(engine, sink, worker_id=worker_id, batch=settings.worker_batch,
                                  lease_ms=lease_ms, poll_seconds=poll)
    worker = AggregationWorker(engine, catalog, worker_id=worker_id, batch=settings.worker_batch,
                               lease_ms=lease_ms, poll_seconds=poll,
                               retry_ms=int(settings.unknown_collection_retry_seconds * 1000),
                               on_events=dispatcher.wake, views=views,
                               carry=Carry(settings.context_mode, settings.carry_rule, catalog))
    loops = Background(worker, dispatcher, sink)
    if listens:
        loops.listener = Listener(engine.url, loops.wake)
    return loops


@dataclass
class Services:
    """What `serve` serves with: every use case, over one engine and one cache."""
    settings: Settings
    engine: AsyncEngine
    cache: ScopeCache
    views: ViewService
    catalog: Catalog
    enrolments: EnrolmentService
    summaries: SummaryService
    erase: EraseService
    downloads: DownloadService
    assessments: AssessmentService
    sunbird: SunbirdService  # lms-service's routes (docs/sunbird.md)
    reports: ReportService
    background: Background | None = None  # the worker's loops, when they run inside `serve`

    async def close(self) -> None:
        if self.background is not None:
            await self.background.close()
        await self.assessments.close()
        await self.catalog.close()
        await self.views.close()
        await self.cache.close()
        await self.engine.dispose()


async def services(settings: Settings, make: Callable[..., Services] = Services) -> Services:
    """Build and start the serving object graph. `make`: Services or a subclass (api/state.py's
    adds what only HTTP needs)."""
    from .services.assessments import AssessmentService
    from .services.carry import Carry
    from .services.downloads import DownloadService
    from .services.enrolments import EnrolmentService
    from .services.erase import EraseService
    from .services.reports import ReportService
    from .services.summaries import SummaryService
    from .services.sunbird import SunbirdService

    db = database(settings)
    if settings.metrics:
        metrics.instrument_pool(db)
    try:
        await ensure_mode(db, settings.context_mode)
    except ModeMismatch:
        await db.dispose()
        raise
    except Exception as e:  # noqa: BLE001 - the database is down: serve what can be served
        log.warning("could not check the recorded context mode: %r", e)
    loops = None

    def work_queued() -> None:  # an in-process worker recomputes now instead of at its next poll
        if loops is not None:
            loops.worker.wake()

    queued = work_queued if settings.runs_worker_in_serve else None
    scopes = scope_cache(settings)
    flushers = 1 if settings.is_sqlite else settings.write_flushers
    catalog = Catalog(db, fetch_url=settings.catalog_url, max_document_bytes=settings.max_body_bytes)
    carry = Carry(settings.context_mode, settings.carry_rule, catalog)
    # A write completing a content carries it in its transaction.
    views = ViewService(db, scopes, max_skew_ms=settings.max_clock_skew_seconds * 1000,
                        max_batch=settings.write_batch_max, flushers=flushers,
                        repair_interval=settings.repair_interval_seconds, carry=carry, on_queued=queued)
    await views.start()
    assessments = AssessmentService(db, views, catalog, max_events=settings.max_assess_events, carry=carry,
                                    max_batch=settings.write_batch_max, flushers=flushers, on_queued=queued)
    summaries = SummaryService(db, views, catalog, settings.context_mode)
    downloads = DownloadService(db, summaries, directory=settings.download_dir,
                                expiry_seconds=settings.download_expiry_seconds)
    if settings.runs_worker_in_serve:
        loops = background(settings, db, catalog, views)
        await loops.start()
    return make(settings, db, scopes, views, catalog,
                enrolments=EnrolmentService(db, views, carry, catalog, on_queued=queued),
                summaries=summaries, erase=EraseService(db, views, downloads), downloads=downloads,
                assessments=assessments,
                sunbird=SunbirdService(db, views, assessments, summaries, catalog, settings.context_mode,
                                       on_queued=queued),
                reports=ReportService(db, summaries, catalog), background=loops)


@dataclass
class WorkerProcess:
    """What `viewer-service worker` runs: the loops, and what they publish carried rows with."""
    engine: AsyncEngine
    catalog: Catalog
    cache: ScopeCache
    background: Background

    async def close(self) -> None:
        await self.background.close()
        await self.catalog.close()
        await self.cache.close()
        await self.engine.dispose()


async def worker_process(settings: Settings) -> WorkerProcess:
    """Build (not start) a worker process's loops; raises ModeMismatch."""
    from .adapters.cache.null import NullCache

    db = database(settings)
    try:
        await ensure_mode(db, settings.context_mode)
    except BaseException:
        await db.dispose()
        raise
    catalog = Catalog(db, fetch_url=settings.catalog_url, max_document_bytes=settings.max_body_bytes)
    # Publishes the rows this worker carries: into the shared cache, or, without one, as repair
    # marks that make the serving process drop those scopes from its own cache.
    scopes = shared_cache(settings) or NullCache()
    views = ViewService(db, scopes, max_skew_ms=settings.max_clock_skew_seconds * 1000)
    return WorkerProcess(db, catalog, scopes, background(settings, db, catalog, views))

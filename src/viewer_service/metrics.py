"""Prometheus metrics (docs/operations.md lists them).

Counters and histograms are updated where things happen, once per request, per batch or per
recompute (never per row). Backlogs (dirty scopes, outbox, cache repairs) are read from the
database at scrape time: they are shared by every process, so any process can report them.

`serve --workers N` runs N processes: the CLI then gives them a fresh PROMETHEUS_MULTIPROC_DIR,
which must be set before this module is imported (prometheus_client picks its value store
then), and /metrics adds up the files every process writes there."""

from __future__ import annotations

import glob
import os
import time

import sqlalchemy as sa
from prometheus_client import (CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram,
                               disable_created_metrics, generate_latest)
from prometheus_client.core import GaugeMetricFamily

from . import __version__ as VERSION

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
disable_created_metrics()  # the *_created series double the exposition and no dashboard uses them

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LAG = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

HTTP_REQUESTS = Counter("viewer_http_requests", "HTTP requests by route template, method and status",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("viewer_http_request_duration_seconds", "HTTP request duration by route and status class",
                         ["method", "route", "status_class"], buckets=_LATENCY)

BATCH_SIZE = Histogram("viewer_batch_size", "Items per group-commit batch (writes) or pipelined cache read",
                       ["batcher"], buckets=_SIZES)
BATCH_SECONDS = Histogram("viewer_batch_duration_seconds", "Time to handle one batch (transaction and cache update)",
                          ["batcher"], buckets=_LATENCY)
WRITE_RETRIES = Counter("viewer_write_retries", "Write transactions retried (serialization failure, lost race)",
                        ["batcher"])

CACHE_READS = Counter("viewer_cache_reads", "Scope reads: hit (served by the cache), miss (filled from the "
                      "database), bypass (cache degraded: read from the database)", ["result"])
CACHE_DEGRADED = Gauge("viewer_cache_degraded", "1 while the cache is not trusted (an update failed; repairs run)",
                       multiprocess_mode="livemax")

RECOMPUTES = Counter("viewer_worker_recomputes", "Scope recomputes by outcome (done, deferred, failed)", ["result"])
RECOMPUTE_SECONDS = Histogram("viewer_worker_recompute_duration_seconds", "Time to recompute one scope",
                              buckets=_LATENCY)
COMPLETION_LAG = Histogram("viewer_worker_lag_seconds", "From a scope's last mark (a view end) to its recompute "
                           "being committed: how stale collection progress is", buckets=_LAG)
OUTBOX_DELIVERED = Counter("viewer_outbox_delivered", "Events delivered to the sink", ["sink"])
OUTBOX_FAILURES = Counter("viewer_outbox_failures", "Events whose delivery failed (retried later)", ["sink"])

DB_POOL_IN_USE = Gauge("viewer_db_pool_in_use", "Database connections checked out of the pool",
                       multiprocess_mode="livesum")


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def instrument_pool(engine) -> None:
    """Count checked-out connections (two cheap events per checkout, not per statement)."""
    from sqlalchemy import event

    @event.listens_for(engine.sync_engine, "checkout")
    def _out(*_):
        DB_POOL_IN_USE.inc()

    @event.listens_for(engine.sync_engine, "checkin")
    def _in(*_):
        DB_POOL_IN_USE.dec()


def process_exited() -> None:
    """Drop this process's live gauges from the multiprocess files (called at shutdown)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(os.getpid())


def prepare_multiprocess_dir(path: str) -> None:
    """A multiprocess directory must start empty: old files would add a dead run's counts."""
    os.makedirs(path, exist_ok=True)
    for f in glob.glob(os.path.join(path, "*.db")):
        os.remove(f)


class _Collect:
    """A collector yielding given families (values read at scrape time), or another registry's."""

    def __init__(self, source):
        self.source = source

    def collect(self):
        return self.source.collect() if isinstance(self.source, CollectorRegistry) else self.source


def _gauge(name: str, doc: str, value: float, labels: dict | None = None) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=list(labels or {}))
    g.add_metric(list((labels or {}).values()), value)
    return g


async def backlog(engine) -> dict[str, float]:
    """Work waiting in the database, shared by every process: one small query per table."""
    from .adapters.db.tables import cache_repair, event_outbox, scope_dirty

    now = time.time()
    async with engine.connect() as conn:
        dirty = (await conn.execute(sa.select(sa.func.count(), sa.func.min(scope_dirty.c.marked_at)))).one()
        out = (await conn.execute(sa.select(sa.func.count(), sa.func.min(event_outbox.c.created_at)))).one()
        repairs = (await conn.execute(sa.select(sa.func.count()).select_from(cache_repair))).scalar_one()
    return {
        "dirty": dirty[0], "dirty_age": max(0.0, now - dirty[1] / 1000) if dirty[1] is not None else 0.0,
        "outbox": out[0], "outbox_age": max(0.0, now - out[1] / 1000) if out[1] is not None else 0.0,
        "repairs": repairs,
    }


async def exposition(app) -> tuple[bytes, str]:
    """The /metrics body: this process's (or every process's) metrics plus the snapshot gauges."""
    s = app.settings
    CACHE_DEGRADED.set(1 if app.views.cache.degraded else 0)
    families = [_gauge("viewer_build_info", "Version and configuration of the running service", 1, {
        "version": VERSION, "backend": "sqlite" if s.is_sqlite else "postgresql", "cache": app.views.cache.kind,
        "context_mode": s.context_mode, "carry_forward": s.carry_forward})]
    try:
        b = await backlog(app.views.reader)
        families += [
            _gauge("viewer_worker_dirty_scopes", "Scopes waiting for a collection progress recompute", b["dirty"]),
            _gauge("viewer_worker_oldest_dirty_age_seconds", "Age of the oldest waiting recompute", b["dirty_age"]),
            _gauge("viewer_outbox_waiting", "Events waiting for the sink", b["outbox"]),
            _gauge("viewer_outbox_oldest_age_seconds", "Age of the oldest waiting event", b["outbox_age"]),
            _gauge("viewer_cache_repairs_pending", "Scopes to drop from the cache before it is trusted again",
                   b["repairs"]),
            _gauge("viewer_database_up", "1 when the backlog query answered", 1),
        ]
    except Exception:  # noqa: BLE001 - the database is down: say so, keep the rest
        families.append(_gauge("viewer_database_up", "1 when the backlog query answered", 0))
    families.append(_gauge("viewer_db_pool_size", "Connections the pool keeps (and as many again on overflow)",
                           s.db_pool_size))
    if multiprocess():
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
    else:
        registry = CollectorRegistry()
        registry.register(_Collect(REGISTRY))  # this process's metrics (REGISTRY itself stays as it is)
    registry.register(_Collect(families))
    return generate_latest(registry), CONTENT_TYPE_LATEST

"""Fixtures: real PostgreSQL and Redis servers (started by tests/servers.py, each on first use) and SQLite.

The folders: unit/ (pure domain and logic: no I/O, no server), integration/ (adapters and services
against the real servers), e2e/ (HTTP through the app, CLI processes, the browser).

Each run (each xdist worker) gets its own PostgreSQL database, SQLite file and Redis key prefix,
shared by its tests, which run in random order: ids of collections and contexts a test creates must
be its own, and a test counts only its own learners' rows (the `user` fixture)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from servers import (PostgresServer, RedisClusterServer, RedisServer, create_database, describe_servers, drop_database,
                     off_loop)
from viewer_service.adapters.db.migrate import upgrade
from viewer_service.api.app import create_app
from viewer_service.config import Settings

RUN_ID = uuid.uuid4().hex[:8]
UNIT = Path(__file__).resolve().parent / "unit"


def migrate(url: str) -> None:
    """Alembic upgrade to head. Session fixtures may be first requested inside an async test
    (`request.getfixturevalue`), where `upgrade`'s own `asyncio.run` would fail: run it off the loop."""
    off_loop(upgrade, url)


@pytest.fixture(scope="session")
def pg_server():
    with PostgresServer() as server:
        yield server


def _pg_database(pg_server):
    dsn = create_database(pg_server.admin_dsn)
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    migrate(url)
    yield url
    drop_database(pg_server.admin_dsn, dsn)


@pytest.fixture(scope="session")
def pg_url(pg_server):
    yield from _pg_database(pg_server)


@pytest.fixture(scope="session")
def pg_cluster_url(pg_server):
    """A database of its own for the Redis Cluster backend: tests that use fixed ids stay independent."""
    yield from _pg_database(pg_server)


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def redis_cluster():
    with RedisClusterServer() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory):
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / f'viewer-{RUN_ID}.db'}"
    migrate(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request) -> str:
    return request.param


@pytest.fixture
def settings(request, backend) -> Settings:
    """Settings for the backend under test; a test may override fields with `settings_overrides`."""
    extra = getattr(request, "param", None) or {}
    overrides = request.node.get_closest_marker("settings")
    if overrides:
        extra = {**extra, **overrides.kwargs}
    if backend == "sqlite":
        base = dict(database_url=request.getfixturevalue("sqlite_url"))
    elif backend == "cluster":  # PostgreSQL + a three-master Redis Cluster (modules opt in)
        base = dict(database_url=request.getfixturevalue("pg_cluster_url"),
                    redis_url=request.getfixturevalue("redis_cluster").url, redis_cluster=True,
                    redis_prefix=f"vt-{RUN_ID}:", repair_interval_seconds=0.05)
    else:
        base = dict(database_url=request.getfixturevalue("pg_url"),
                    redis_url=request.getfixturevalue("redis_server").url,
                    redis_prefix=f"vt-{RUN_ID}:", repair_interval_seconds=0.05)
    tmp = request.getfixturevalue("tmp_path")
    # The worker runs inside the app on both backends, so tests see progress computed.
    base.update(worker_in_serve=True, worker_poll_seconds=0.05, event_sink=f"file:{tmp / 'events.jsonl'}",
                download_dir=str(tmp / "downloads"))
    # PostgreSQL's fallback poll too (notifications wake the worker; tests/e2e/test_worker.py tests them alone).
    base.update(worker_listen_poll_seconds=0.05)
    return Settings(**{**base, "repair_interval_seconds": 0.05, **extra})


@pytest.fixture
async def app(settings):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://viewer") as c:
        yield c


@pytest.fixture
def service(app):
    return app.state.app.views


@pytest.fixture
def user() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


def pytest_configure(config):
    config.addinivalue_line("markers", "settings(**kw): override Settings fields for the test")
    config.addinivalue_line("markers", "mode(name): run on an instance in this context mode (tests/e2e/test_modes.py)")
    config.addinivalue_line("markers", "slow: minutes, not seconds; part of scripts/test and CI like every test "
                                       "(-m 'not slow' leaves them out of a quick loop)")


async def wait_until(predicate, timeout: float = 30.0, interval: float = 0.02):
    """Poll an async predicate (no timing assertions: only bounded waiting)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        if await predicate():
            return True
        if loop.time() > end:
            return False
        await asyncio.sleep(interval)


# -- what the run uses, printed also under -q (pytest's own header is not) ---------------------

def _order_line(config) -> str:
    seed = config.getoption("randomly_seed", None)
    if not isinstance(seed, int) or not config.getoption("randomly_reorganize", True):
        return "Test order: file order (pytest-randomly is off)"
    return f"Test order: random, seed {seed} (repeat it: scripts/test --randomly-seed={seed}; file order: -p no:randomly)"


def _write_lines(config, lines) -> None:
    tr = config.pluginmanager.get_plugin("terminalreporter")
    if tr is not None and not hasattr(config, "workerinput"):  # an xdist worker: the controller prints
        for line in lines:
            tr.write_line(line)


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    # The xdist controller collects nothing itself: it names the servers now, not after collection.
    servers = describe_servers() if session.config.pluginmanager.hasplugin("dsession") else []
    _write_lines(session.config, [*servers, _order_line(session.config)])


def pytest_collection_finish(session):
    # Unit tests start no server and connect to none: a run of them alone does not name any.
    if not session.config.pluginmanager.hasplugin("dsession") and not all(
            UNIT in Path(item.path).resolve().parents for item in session.items):
        _write_lines(session.config, describe_servers())


def pytest_terminal_summary(terminalreporter, config):
    if not hasattr(config, "workerinput"):
        terminalreporter.write_line(_order_line(config))

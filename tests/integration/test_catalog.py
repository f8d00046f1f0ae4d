"""The catalog service: its in-process cache, remote fetches and database failures."""

import asyncio
import uuid

import pytest

from remote_catalog import RemoteCatalog
from servers import free_port
from viewer_service.adapters.db import collections as repo
from viewer_service.adapters.db.engine import make_engine
from viewer_service.services.catalog import Catalog
from viewer_service.errors import Unavailable


@pytest.fixture
def cid() -> str:
    return f"do_{uuid.uuid4().hex[:12]}"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def engine(service):
    return service.engine


@pytest.fixture
async def two_processes(engine):
    """Two catalogs on one database, as two serving processes would be, on a clock we move."""
    clock = Clock()
    a, b = Catalog(engine, ttl=5, clock=clock), Catalog(engine, ttl=5, clock=clock)
    yield a, b, clock
    await a.close()
    await b.close()


async def test_a_put_is_seen_at_once_in_its_own_process(two_processes, cid):
    a, _, _ = two_processes
    await a.put(cid, {"leafNodes": ["x"]})
    assert (await a.get(cid)).leaf_nodes == ("x",)
    await a.put(cid, {"leafNodes": ["y"]})
    assert (await a.get(cid)).leaf_nodes == ("y",)


async def test_another_process_sees_a_put_after_the_ttl(two_processes, cid):
    a, b, clock = two_processes
    assert await b.get(cid) is None  # unknown is cached too
    await a.put(cid, {"leafNodes": ["x"]})
    assert await b.get(cid) is None
    clock.t += 5.1
    assert (await b.get(cid)).leaf_nodes == ("x",)
    await a.put(cid, {"leafNodes": ["y"]})
    clock.t += 4.9
    assert (await b.get(cid)).leaf_nodes == ("x",)
    clock.t += 0.2
    assert (await b.get(cid)).leaf_nodes == ("y",)


async def test_the_cache_is_bounded(engine, cid):
    clock = Clock()
    a, b = Catalog(engine, clock=clock), Catalog(engine, max_entries=2, clock=clock)
    ids = [f"{cid}-{i}" for i in range(3)]
    for i in ids:
        await a.put(i, {"leafNodes": ["v1"]})
        await b.get(i)
    assert len(b._cache) == 2
    await a.put(ids[0], {"leafNodes": ["v2"]})
    # The oldest entry was dropped: it is read again (the others would still be served from memory).
    assert (await b.get(ids[0])).leaf_nodes == ("v2",)
    await a.close()
    await b.close()


async def test_a_load_racing_a_put_does_not_cache_the_older_copy(two_processes, cid, monkeypatch):
    a, _, _ = two_processes
    await a.put(cid, {"leafNodes": ["old"]})
    a._cache.clear()
    read, release, real_load = asyncio.Event(), asyncio.Event(), repo.load

    async def paused_load(conn, collection_id):
        found = await real_load(conn, collection_id)
        read.set()
        await release.wait()
        return found

    monkeypatch.setattr(repo, "load", paused_load)
    load = asyncio.ensure_future(a.get(cid))
    await read.wait()  # the load has read the old copy ...
    await a.put(cid, {"leafNodes": ["new"]})  # ... a put lands ...
    release.set()
    assert (await load).leaf_nodes == ("old",)  # ... and the load ends after it
    assert (await a.get(cid)).leaf_nodes == ("new",)


@pytest.fixture
def remote():
    server = RemoteCatalog()
    yield server
    server.close()


async def test_concurrent_reads_of_an_unknown_collection_fetch_it_once(engine, remote, cid):
    remote.answers[cid] = (200, b'{"result": {"content": {"leafNodes": ["a"]}}}', 0.3)
    catalog = Catalog(engine, fetch_url=remote.url)
    try:
        got = await asyncio.gather(*(catalog.get(cid) for _ in range(5)))
        assert [c.leaf_nodes for c in got] == [("a",)] * 5 and remote.hits.count(cid) == 1
    finally:
        await catalog.close()


async def test_a_slow_remote_times_out_as_unknown(engine, remote, cid):
    remote.answers[cid] = (200, b'{"result": {"content": {"leafNodes": ["a"]}}}', 3)
    catalog = Catalog(engine, fetch_url=remote.url, fetch_timeout=0.2)
    try:
        assert await asyncio.wait_for(catalog.get(cid), 2) is None
    finally:
        await catalog.close()


async def test_a_remote_document_over_the_size_limit_is_unknown(engine, remote, cid):
    remote.answers[cid] = {"leafNodes": [f"content-{i}" for i in range(500)]}
    catalog = Catalog(engine, fetch_url=remote.url, max_document_bytes=2000)
    try:
        assert await catalog.get(cid) is None
    finally:
        await catalog.close()


async def test_a_database_outage_is_unavailable_not_a_bug(cid):
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/none")
    catalog = Catalog(engine)
    try:
        with pytest.raises(Unavailable):
            await catalog.get(cid)
        with pytest.raises(Unavailable):
            await catalog.put(cid, {"leafNodes": ["a"]})
    finally:
        await catalog.close()
        await engine.dispose()

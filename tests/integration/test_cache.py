"""The scope cache: monotonic merges, fill on miss, read-after-write, Redis outages."""

import asyncio
import random

import pytest

from redis.crc import key_slot

from helpers import call, now_ms, read
from viewer_service.adapters.cache.memory import MemoryCache
from viewer_service.adapters.cache.redis import RedisCache
from viewer_service.domain.scope import Scope

S = Scope("u", "col", "ctx")


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def cache(request):
    if request.param == "memory":
        c = MemoryCache()
    else:
        cluster = request.param == "redis-cluster"
        server = request.getfixturevalue("redis_cluster" if cluster else "redis_server")
        c = RedisCache(server.url, prefix=f"vt-cache-{random.getrandbits(32):x}:", ttl_seconds=60, cluster=cluster)
    yield c
    await c.close()


async def test_a_lower_version_never_replaces_a_higher_one(cache):
    await cache.put([(S, "c", 5, {"status": 2, "progress": 100})], full=S)
    await cache.put([(S, "c", 3, {"status": 1, "progress": 10})])
    assert await cache.read(S, ["c"]) == {"c": {"status": 2, "progress": 100}}


async def test_racing_puts_keep_the_highest_version(cache):
    await cache.put([], full=S)
    versions = list(range(1, 201))
    random.shuffle(versions)
    assert all(await asyncio.gather(*(cache.put([(S, "c", v, {"progress": v // 2})]) for v in versions)))
    assert await cache.read(S, ["c"]) == {"c": {"progress": 100}}


async def test_a_scope_is_only_trusted_once_filled(cache):
    await cache.put([(S, "c", 1, {"status": 1})])  # a writer's entry: partial scope
    assert await cache.read(S, ["c"]) is None
    await cache.put([(S, "d", 1, {"status": 2})], full=S)
    assert await cache.read(S, None) == {"c": {"status": 1}, "d": {"status": 2}}
    assert await cache.read(S, ["d", "zz"]) == {"d": {"status": 2}}
    await cache.invalidate([S])
    assert await cache.read(S, ["d"]) is None


async def test_ids_with_separators_do_not_collide(redis_server):
    c = RedisCache(redis_server.url, prefix="vt-sep:")
    assert c.key(Scope("a:b", "c", "d")) != c.key(Scope("a", "b:c", "d"))
    await c.close()


async def test_a_batch_spanning_many_cluster_slots_is_merged_and_read_back(redis_cluster):
    """One write batch holds many learners: on a cluster it becomes one script call per slot."""
    c = RedisCache(redis_cluster.url, prefix=f"vt-cl-{random.getrandbits(32):x}:", ttl_seconds=60, cluster=True)
    try:
        scopes = [Scope(f"u{i}", "col", "ctx") for i in range(64)]
        assert len({key_slot(c.key(s).encode()) for s in scopes}) > 10
        # A learner's scopes share a slot, whatever the collection and context.
        assert len({key_slot(c.key(Scope("u}x{", col, ctx)).encode()) for col in "ab" for ctx in "cd"}) == 1
        for s in scopes:
            assert await c.put([], full=s)
        assert await c.put([(s, "c", 2, {"status": 2, "u": s.user_id}) for s in scopes])
        assert await c.put([(s, "c", 1, {"status": 1}) for s in scopes])  # older: never replaces
        got = await asyncio.gather(*(c.read(s, ["c"]) for s in scopes))
        assert got == [{"c": {"status": 2, "u": s.user_id}} for s in scopes]
        assert await c.invalidate(scopes)
        assert await c.read(scopes[0], ["c"]) is None
        for s in scopes:
            assert await c.put([(s, "c", 3, {"status": 2})], full=s)
        assert await c.clear() == len(scopes)  # scans every master
        assert await c.read(scopes[1], ["c"]) is None
    finally:
        await c.close()


async def test_read_after_write_under_concurrent_writers(client, user):
    """Every read issued after a write was acknowledged shows that write."""
    base = now_ms() - 100_000
    contents = [f"c{i}" for i in range(8)]
    for c in contents:
        await call(client, "start", userId=user, contentId=c, collectionId="col")

    async def learner(c: str):
        for step in range(1, 11):
            status, _ = await call(client, "update", userId=user, contentId=c, collectionId="col",
                                   progress=step * 9, ts=base + step, progressDetails={"step": step})
            assert status == 200
            got = (await read(client, userId=user, contentId=c, collectionId="col"))[c]
            assert got["progress"] >= step * 9 and got["progressDetails"]["step"] >= step
        status, _ = await call(client, "end", userId=user, contentId=c, collectionId="col", ts=base + 100)
        assert status == 200
        assert (await read(client, userId=user, contentId=c, collectionId="col"))[c]["status"] == 2

    await asyncio.gather(*(learner(c) for c in contents))
    final = await read(client, userId=user, collectionId="col")
    assert all(final[c]["status"] == 2 and final[c]["progressDetails"] == {"step": 10} for c in contents)


async def test_concurrent_updates_of_one_content_keep_the_maximum(client, service, user):
    await call(client, "start", userId=user, contentId="c")
    values = list(range(0, 101, 5))
    random.shuffle(values)
    results = await asyncio.gather(*(call(client, "update", userId=user, contentId="c", progress=v) for v in values))
    assert all(s == 200 for s, _ in results)
    assert (await read(client, userId=user, contentId="c"))["c"]["progress"] == 100


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_miss_is_filled_from_the_database(client, service, user):
    await call(client, "start", userId=user, contentId="c", collectionId="col")
    scope = Scope(user, "col", "col")
    await service.cache.invalidate([scope])
    assert await service.cache.read(scope, ["c"]) is None
    assert (await read(client, userId=user, contentId="c", collectionId="col"))["c"]["status"] == 1
    assert (await service.cache.read(scope, ["c"]))["c"]["status"] == 1


@pytest.mark.parametrize("backend", ["postgres"])
async def test_redis_down_writes_succeed_and_reads_fall_back(client, service, redis_server, user):
    await call(client, "start", userId=user, contentId="c", collectionId="col")
    await read(client, userId=user, collectionId="col")  # cached in full
    redis_server.stop()
    try:
        status, _ = await call(client, "end", userId=user, contentId="c", collectionId="col")
        assert status == 200
        status, _ = await call(client, "start", userId=user, contentId="d", collectionId="col")
        assert status == 200
        got = await read(client, userId=user, collectionId="col")
        assert (got["c"]["status"], got["d"]["status"]) == (2, 1)
        health = (await client.get("/health/service")).json()["result"]["services"]
        assert [s["healthy"] for s in health] == [True, False]
    finally:
        redis_server.start()
    got = await read(client, userId=user, collectionId="col")
    assert (got["c"]["status"], got["d"]["status"]) == (2, 1)


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_stale_entry_left_by_a_failed_update_is_repaired_not_served(client, service, redis_server, user):
    """Redis keeps its data but misses an update (it hung): the old entry must never be served."""
    from conftest import wait_until

    await call(client, "start", userId=user, contentId="c", collectionId="col")
    assert (await read(client, userId=user, contentId="c", collectionId="col"))["c"]["status"] == 1
    scope = Scope(user, "col", "col")
    redis_server.pause(3)  # clients time out after 1 s; the data stays
    status, _ = await call(client, "end", userId=user, contentId="c", collectionId="col")
    assert status == 200
    assert service.cache.degraded
    assert (await read(client, userId=user, contentId="c", collectionId="col"))["c"]["status"] == 2
    assert await wait_until(lambda: _not_degraded(service), timeout=15)
    # Repaired: the stale scope was dropped and refilled from the database.
    assert (await read(client, userId=user, contentId="c", collectionId="col"))["c"]["status"] == 2
    assert (await service.cache.read(scope, ["c"]))["c"]["status"] == 2


async def _not_degraded(service):
    return not service.cache.degraded

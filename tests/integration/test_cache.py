"""The scope cache adapters (memory, Redis, Redis Cluster): monotonic merges, scopes trusted once
filled, keys and cluster slots. Through HTTP: tests/e2e/test_api_cache.py."""

import asyncio
import random

import pytest

from redis.crc import key_slot

from viewer_service.adapters.cache.memory import MemoryCache
from viewer_service.adapters.cache.redis import RedisCache
from viewer_service.domain.scope import Scope
from viewer_service.domain.views import ViewEntry

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
    await cache.put([(S, "c", 5, ViewEntry(2, 100))], full=S)
    await cache.put([(S, "c", 3, ViewEntry(1, 10))])
    assert await cache.read(S, ["c"]) == {"c": ViewEntry(2, 100)}


async def test_racing_puts_keep_the_highest_version(cache):
    await cache.put([], full=S)
    versions = list(range(1, 201))
    random.shuffle(versions)
    assert all(await asyncio.gather(*(cache.put([(S, "c", v, ViewEntry(1, v // 2))]) for v in versions)))
    assert await cache.read(S, ["c"]) == {"c": ViewEntry(1, 100)}


async def test_a_scope_is_only_trusted_once_filled(cache):
    await cache.put([(S, "c", 1, ViewEntry(1))])  # a writer's entry: partial scope
    assert await cache.read(S, ["c"]) is None
    await cache.put([(S, "d", 1, ViewEntry(2))], full=S)
    assert await cache.read(S, None) == {"c": ViewEntry(1), "d": ViewEntry(2)}
    assert await cache.read(S, ["d", "zz"]) == {"d": ViewEntry(2)}
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
        assert await c.put([(s, "c", 2, ViewEntry(2, progress_details={"u": s.user_id})) for s in scopes])
        assert await c.put([(s, "c", 1, ViewEntry(1)) for s in scopes])  # older: never replaces
        got = await asyncio.gather(*(c.read(s, ["c"]) for s in scopes))
        assert got == [{"c": ViewEntry(2, progress_details={"u": s.user_id})} for s in scopes]
        assert await c.invalidate(scopes)
        assert await c.read(scopes[0], ["c"]) is None
        for s in scopes:
            assert await c.put([(s, "c", 3, ViewEntry(2))], full=s)
        assert await c.clear() == len(scopes)  # scans every master
        assert await c.read(scopes[1], ["c"]) is None
    finally:
        await c.close()


async def test_entries_already_in_redis_keep_reading(redis_server):
    """Entries stored by earlier releases (before assessments: no score fields) and today's, with
    every optional field, read back as the same entries (adapters/cache/codec.py)."""
    c = RedisCache(redis_server.url, prefix=f"vt-old-{random.getrandbits(32):x}:")
    try:
        await c.client.hset(c.key(S), mapping={
            "": "1", "old": b'7|{"status":2,"progress":100,"progressDetails":{"p":3},"lastAccessTime":5,'
                           b'"lastCompletedTime":6}'})
        assert await c.read(S, ["old"]) == {"old": ViewEntry(2, 100, {"p": 3}, 5, 6)}
        new = ViewEntry(2, 100, None, 5, 6, 8.0, 10.0, 3, {"scope": "x", "attemptId": "a1"}, "a1", True)
        assert await c.put([(S, "new", 9, new)])
        assert await c.read(S, None) == {"old": ViewEntry(2, 100, {"p": 3}, 5, 6), "new": new}
    finally:
        await c.client.delete(c.key(S))
        await c.close()

"""The scope cache seen through HTTP: read-after-write, fill on miss, Redis down or hung. The cache
adapters alone: tests/integration/test_cache.py."""

import asyncio
import random

import pytest

from helpers import call, now_ms, read
from viewer_service.domain.scope import Scope


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
    assert (await service.cache.read(scope, ["c"]))["c"].status == 1


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
    assert (await service.cache.read(scope, ["c"]))["c"].status == 2


async def _not_degraded(service):
    return not service.cache.degraded


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_score_missed_by_a_hung_redis_is_repaired_not_served(client, service, redis_server, user):
    """Submits of one batch share one cache update: when it fails, none of their old scores is served."""
    from conftest import wait_until
    from progress_helpers import post

    def attempt(score):
        return [{"eid": "ASSESS", "ets": now_ms() - 1000, "edata": {"score": score, "duration": 1,
                 "item": {"id": "q1", "maxscore": 1, "type": "mcq", "title": "q1"}}}]

    learners = [f"{user}-{i}" for i in range(4)]
    for u in learners:
        st, body = await post(client, "/v1/assessment/submit", userId=u, contentId="quiz", collectionId="col",
                              attemptId="a1", assessments=attempt(0))
        assert st == 200, body
        assert (await read(client, userId=u, contentId="quiz", collectionId="col"))["quiz"]["score"] == 0
    redis_server.pause(3)  # clients time out after 1 s; the data stays
    done = await asyncio.gather(*(post(client, "/v1/assessment/submit", userId=u, contentId="quiz", collectionId="col",
                                       attemptId="a2", assessments=attempt(1)) for u in learners))
    assert all(st == 200 for st, _ in done), done
    assert service.cache.degraded
    for u in learners:
        assert (await read(client, userId=u, contentId="quiz", collectionId="col"))["quiz"]["score"] == 1
    assert await wait_until(lambda: _not_degraded(service), timeout=15)
    for u in learners:
        assert (await read(client, userId=u, contentId="quiz", collectionId="col"))["quiz"]["score"] == 1
        assert (await service.cache.read(Scope(u, "col", "col"), ["quiz"]))["quiz"].score == 1

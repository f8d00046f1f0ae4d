"""Completion events: the outbox, the sinks, and exactly-once delivery (their Sunbird shapes:
tests/unit/test_domain_events.py)."""

from __future__ import annotations

import logging
import uuid

import orjson
import pytest
import redis.asyncio as aioredis
import sqlalchemy as sa

from conftest import RUN_ID, wait_until
from viewer_service.adapters.db import outbox
from viewer_service.adapters.db.engine import make_engine
from viewer_service.adapters.db.tables import event_outbox
from viewer_service.adapters.events import FileSink, NullSink, RedisStreamSink, make_sink
from viewer_service.clock import now_ms
from viewer_service.domain.events import completion_events
from viewer_service.services.outbox import OutboxDispatcher

PREFIX = f"vt-{RUN_ID}:"
LEASE = 30_000


def _uid() -> str:
    return f"u-{uuid.uuid4().hex[:12]}"


# -- sink specs -----------------------------------------------------------------------------

async def test_sink_specs(tmp_path):
    assert isinstance(make_sink("none", None, "p:"), NullSink)
    f = make_sink(f"file:{tmp_path / 'e.jsonl'}", None, "p:")
    assert isinstance(f, FileSink) and f.path == str(tmp_path / "e.jsonl")
    for bad in ["", "nonsense", "kafka:topic", "file", "redis-stream"]:
        with pytest.raises(ValueError, match="VIEWER_EVENT_SINK"):
            make_sink(bad, "redis://127.0.0.1:1/0", "p:")
    with pytest.raises(ValueError, match="VIEWER_EVENT_SINK"):
        make_sink("file:", None, "p:")
    with pytest.raises(ValueError, match="VIEWER_EVENT_SINK"):
        make_sink("redis-stream:", "redis://127.0.0.1:1/0", "p:")
    with pytest.raises(ValueError, match="VIEWER_REDIS_URL"):
        make_sink("redis-stream:events", None, "p:")
    r = make_sink("redis-stream:events", "redis://127.0.0.1:1/0", "p:")
    assert isinstance(r, RedisStreamSink) and r.stream == "p:events"
    await r.close()
    await make_sink("none").publish([("m", {"mid": "m"})])


async def test_file_sink_recovery_skips_what_is_written_and_never_appends_to_a_torn_line(tmp_path):
    path = tmp_path / "e.jsonl"
    sink = FileSink(str(path))
    await sink.publish([("m1", {"mid": "m1", "n": 1})])
    with open(path, "ab") as f:
        f.write(b'{"mid":"m2","n"')  # a crash mid-write
    await sink.publish([("m1", {"mid": "m1", "n": 1}), ("m2", {"mid": "m2", "n": 2})], maybe_written=True)
    lines = path.read_bytes().splitlines()
    assert [orjson.loads(x) for x in lines if x.startswith(b'{"mid":"m') and x.endswith(b"}")] == [
        {"mid": "m1", "n": 1}, {"mid": "m2", "n": 2}]
    # Without the recovery flag nothing is scanned (the normal path stays O(batch)).
    await sink.publish([("m1", {"mid": "m1", "n": 1})])
    assert path.read_bytes().count(b'"mid":"m1"') == 2


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request) -> str:
    # Sync: the session fixtures run migrations with asyncio.run, which needs no running loop.
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
async def engine(db_url):
    eng = make_engine(db_url)
    yield eng
    await eng.dispose()


class Sunk:
    """A sink under test and a way to read back everything it holds."""

    def __init__(self, sink, read):
        self.sink, self.read = sink, read

    async def payloads(self, users: set[str]) -> list[dict]:
        # The outbox is shared by the test session: only look at this test's learners.
        return [p for p in await self.read() if _user_of(p) in users]


def _user_of(p: dict) -> str | None:
    return p["actor"]["id"] if p.get("eid") == "AUDIT" else (p.get("edata") or {}).get("userIds", [None])[0]


async def _file_sunk(tmp_path):
    path = tmp_path / "events.jsonl"

    async def read():
        if not path.exists():
            return []
        return [orjson.loads(x) for x in path.read_bytes().splitlines() if x]
    return Sunk(FileSink(str(path)), read), None


async def _redis_sunk(server, cluster: bool = False):
    name = f"events-{uuid.uuid4().hex[:8]}"
    client = (aioredis.RedisCluster if cluster else aioredis.Redis).from_url(server.url)

    async def read():
        return [orjson.loads(fields[b"event"]) for _, fields in await client.xrange(PREFIX + name)]
    return Sunk(RedisStreamSink(server.url, name, PREFIX, cluster=cluster), read), client


@pytest.fixture(params=["file", "redis", "redis-cluster"])
def sink_kind(request):
    server = {"redis": "redis_server", "redis-cluster": "redis_cluster"}.get(request.param)
    return request.param, (request.getfixturevalue(server) if server else None)


@pytest.fixture
async def sunk(sink_kind, tmp_path):
    kind, server = sink_kind
    s, client = await (_file_sunk(tmp_path) if kind == "file" else _redis_sunk(server, kind == "redis-cluster"))
    yield s
    await s.sink.close()
    if client is not None:
        await client.aclose()


async def _complete(engine, n_users: int, now: int) -> tuple[set[str], list[dict]]:
    """Queue the completion events of `n_users` learners (two each), as the worker would."""
    users, payloads = set(), []
    async with engine.begin() as conn:
        for i in range(n_users):
            u = _uid()
            events = completion_events(u, f"do_c{i}", f"b{i}", now - 1000, now)
            await outbox.enqueue(conn, u, events, now)
            users.add(u)
            payloads += [e.payload for e in events]
    return users, payloads


async def _pending(engine, users: set[str]) -> list[dict]:
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(event_outbox).where(event_outbox.c.user_id.in_(users)))
        return [dict(r._mapping) for r in rows]


def _assert_exactly_once(got: list[dict], expected: list[dict]):
    mids = [p["mid"] for p in got]
    assert len(mids) == len(set(mids)), "a duplicate reached the sink"
    assert sorted(got, key=lambda p: p["mid"]) == sorted(expected, key=lambda p: p["mid"])


async def _drain(d: OutboxDispatcher, rounds: int = 1000) -> None:
    for _ in range(rounds):
        if not await d.run_once():
            return
    raise AssertionError("the outbox did not drain")


# -- outbox ---------------------------------------------------------------------------------

async def test_enqueue_twice_keeps_one_row_per_event(engine):
    u, now = _uid(), now_ms()
    events = completion_events(u, "do_c", "b", now - 5, now)
    for t in (now, now + 1):
        async with engine.begin() as conn:
            await outbox.enqueue(conn, u, events, t)
            await outbox.enqueue(conn, u, events, t)
    rows = await _pending(engine, {u})
    assert sorted((r["kind"], r["event_id"]) for r in rows) == sorted((e.kind, e.event_id) for e in events)
    by_kind = {r["kind"]: r for r in rows}
    for e in events:
        r = by_kind[e.kind]
        assert r["payload"] == e.payload
        assert (r["collection_id"], r["context_id"]) == ("do_c", "b")
        assert (r["created_at"], r["due_at"], r["claimed_by"], r["attempts"]) == (now, now, None, 0)


async def test_erase_drops_a_learners_pending_events(engine):
    u, other, now = _uid(), _uid(), now_ms()
    async with engine.begin() as conn:
        await outbox.enqueue(conn, u, completion_events(u, "c1", "b1", now, now), now)
        await outbox.enqueue(conn, u, completion_events(u, "c2", "b2", now, now), now)
        await outbox.enqueue(conn, other, completion_events(other, "c1", "b1", now, now), now)
    async with engine.begin() as conn:
        assert await outbox.erase(conn, u, "c1", "b1") == 2
    assert {r["collection_id"] for r in await _pending(engine, {u})} == {"c2"}
    async with engine.begin() as conn:
        assert await outbox.erase(conn, u) == 2
    assert await _pending(engine, {u}) == []
    assert len(await _pending(engine, {other})) == 2


# -- delivery -------------------------------------------------------------------------------

async def test_dispatcher_delivers_each_event_once(engine, sunk):
    now = now_ms()
    users, expected = await _complete(engine, 5, now)
    d = OutboxDispatcher(engine, sunk.sink, worker_id=f"w-{uuid.uuid4().hex[:6]}", batch=3, clock=lambda: now)
    await _drain(d)
    assert await _pending(engine, users) == []
    _assert_exactly_once(await sunk.payloads(users), expected)
    assert d.delivered >= len(expected)


async def test_two_dispatchers_concurrently_deliver_200_events_once(engine, sunk):
    users, expected = await _complete(engine, 100, now_ms())
    ds = [OutboxDispatcher(engine, sunk.sink, worker_id=f"w{i}-{uuid.uuid4().hex[:6]}", batch=7, poll_seconds=0.01)
          for i in range(2)]
    for d in ds:
        d.start()
    try:
        async def drained():
            return not await _pending(engine, users)
        assert await wait_until(drained, timeout=60)
    finally:
        for d in ds:
            await d.close()
    _assert_exactly_once(await sunk.payloads(users), expected)


async def test_a_dispatcher_that_died_after_publishing_causes_no_duplicate(engine, sunk):
    t0 = now_ms()
    users, expected = await _complete(engine, 3, t0)
    # The dead dispatcher: claimed, published part of its batch (say it died mid-way), never deleted.
    async with engine.begin() as conn:
        claimed = [c for c in await outbox.claim(conn, "dead", t0, LEASE, 10_000) if c.user_id in users]
    assert len(claimed) == len(expected)
    await sunk.sink.publish([(c.payload["mid"], c.payload) for c in claimed[:4]])
    assert len(await sunk.payloads(users)) == 4

    # Within the lease nobody else takes them.
    other = OutboxDispatcher(engine, sunk.sink, worker_id="next", clock=lambda: t0 + LEASE - 1)
    await _drain(other)
    assert len(await _pending(engine, users)) == len(expected)

    # After it, the next dispatcher re-delivers: the sink drops what the dead one wrote.
    other.clock = lambda: t0 + LEASE + 1
    await _drain(other)
    assert await _pending(engine, users) == []
    _assert_exactly_once(await sunk.payloads(users), expected)


class BrokenSink:
    async def publish(self, events, *, maybe_written=False):
        raise OSError("disk on fire")

    async def close(self):
        pass


async def test_a_failing_sink_releases_the_batch_with_backoff(engine, caplog):
    t0 = now_ms()
    users, _ = await _complete(engine, 1, t0)
    d = OutboxDispatcher(engine, BrokenSink(), worker_id="w-broken", clock=lambda: t0)
    with caplog.at_level(logging.WARNING):
        await _drain(d)
    assert "disk on fire" in caplog.text
    rows = await _pending(engine, users)
    assert [(r["claimed_by"], r["attempts"], r["due_at"]) for r in rows] == [(None, 1, t0 + 200)] * 2
    d.clock = lambda: t0 + 200
    await _drain(d)
    assert {(r["attempts"], r["due_at"]) for r in await _pending(engine, users)} == {(2, t0 + 200 + 400)}
    # The loop itself never stops on it.
    d.clock, d.poll_seconds = (lambda: t0 + 10**6), 0.01
    d.start()
    try:
        async def failed_again():
            return d.failed >= 6
        assert await wait_until(failed_again)
        assert not d._task.done()
    finally:
        await d.close()
        async with engine.begin() as conn:
            for u in users:
                await outbox.erase(conn, u)


async def test_redis_down_then_back_delivers_once(sqlite_url, redis_server):
    engine = make_engine(sqlite_url)
    s, client = await _redis_sunk(redis_server)
    t0 = now_ms()
    try:
        users, expected = await _complete(engine, 2, t0)
        d = OutboxDispatcher(engine, s.sink, worker_id="w-redis", clock=lambda: t0)
        redis_server.stop()
        try:
            assert await d.run_once() == 0
            rows = await _pending(engine, users)
            assert len(rows) == 4
            assert {(r["claimed_by"], r["attempts"]) for r in rows} == {(None, 1)}
            assert all(r["due_at"] > t0 for r in rows)
        finally:
            redis_server.start()
        d.clock = lambda: t0 + 60_000
        await _drain(d)
        assert await _pending(engine, users) == []
        _assert_exactly_once(await s.payloads(users), expected)
    finally:
        await s.sink.close()
        await client.aclose()
        await engine.dispose()

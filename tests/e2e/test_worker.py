"""The aggregation worker on its queue: coalescing, several workers, crashes, Redis outages."""

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from conftest import wait_until
from progress_helpers import post, put_collection, queue_empty, stored_enrolment, summary, view
from viewer_service.adapters.db import dirty as repo
from viewer_service.adapters.db.tables import event_outbox, scope_dirty
from viewer_service.services.aggregation import AggregationWorker

pytestmark = pytest.mark.settings(worker_in_serve=False)  # the tests drive the workers
BIN = Path(sys.executable).with_name("viewer-service")


def worker_for(app, **kw) -> AggregationWorker:
    a = app.state.app
    return AggregationWorker(a.views.engine, a.catalog, **kw)


async def dirty_rows(app, user):
    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(scope_dirty).where(scope_dirty.c.user_id == user))).all()


async def outbox_rows(app, user):
    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(event_outbox).where(event_outbox.c.user_id == user))).all()


async def drain(app, user, worker, rounds: int = 1000):
    for _ in range(rounds):
        if await queue_empty(app, user):
            return
        await worker.run_once()
    raise AssertionError(f"the dirty queue of {user} did not drain in {rounds} rounds")


async def test_concurrent_ends_in_one_scope_coalesce_into_one_recompute(client, app, user):
    leaves = [f"c{i}" for i in range(30)]
    await put_collection(client, "course-co", leafNodes=leaves)
    await post(client, "/v1/enrol", userId=user, collectionId="course-co")
    await asyncio.gather(*(view(client, user, c, "course-co") for c in leaves))
    [mark] = await dirty_rows(app, user)
    assert mark.seq >= 1
    w = worker_for(app, batch=1000)
    seen = []
    orig = w._recompute

    async def spy(c):
        if c.scope.user_id == user:
            seen.append(c.scope)
        return await orig(c)

    w._recompute = spy
    await drain(app, user, w)
    assert len(seen) == 1  # thirty ends, one recompute
    row = await stored_enrolment(app, user, "course-co")
    assert (row.status, row.progress) == (2, 100)


async def test_two_workers_on_one_queue_complete_every_scope_once(client, app, user):
    n = 24
    for i in range(n):
        await put_collection(client, f"course-2w-{i}", leafNodes=["a", "b"])
        await post(client, "/v1/enrol", userId=user, collectionId=f"course-2w-{i}")
    await asyncio.gather(*(view(client, user, c, f"course-2w-{i}") for i in range(n) for c in ("a", "b")))
    w1, w2 = worker_for(app, batch=3), worker_for(app, batch=3)
    await asyncio.gather(drain(app, user, w1), drain(app, user, w2))
    for i in range(n):
        row = await stored_enrolment(app, user, f"course-2w-{i}")
        assert (row.status, row.progress) == (2, 100) and row.completed_on is not None
    # Exactly one certificate request and one audit event per completion.
    kinds = sorted(r.kind for r in await outbox_rows(app, user))
    assert kinds == sorted(["cert-issue", "enrol-complete"] * n)


async def test_a_worker_that_dies_mid_batch_loses_nothing(client, app, user):
    await put_collection(client, "course-die", leafNodes=["a"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-die")
    await view(client, user, "a", "course-die")
    now = app.state.app.views.clock()
    async with app.state.app.views.engine.begin() as conn:  # the claim commits, then the worker is gone
        claims = await repo.claim(conn, "dead-worker", now, 30_000, 10_000)
    assert any(c.scope.user_id == user for c in claims)
    w = worker_for(app)
    await w.run_once()  # the lease has not expired: nothing of it is taken
    assert (await stored_enrolment(app, user, "course-die")).completed_on is None
    later = worker_for(app, clock=lambda: now + 31_000)
    await drain(app, user, later)
    assert (await stored_enrolment(app, user, "course-die")).completed_on is not None
    assert len(await outbox_rows(app, user)) == 2


@pytest.mark.parametrize("backend", ["postgres"])
async def test_killed_worker_processes_are_replaced_without_loss_or_duplicates(client, app, user, pg_url, tmp_path):
    """kill -9 a `viewer-service worker` in the middle of its work; another finishes it."""
    n = 150
    for i in range(n):
        await post(client, "/v1/enrol", userId=user, collectionId=f"course-k-{i}")
    await asyncio.gather(*(view(client, user, "a", f"course-k-{i}") for i in range(n)))
    for i in range(n):  # registered after the ends: every scope is due at once
        await put_collection(client, f"course-k-{i}", leafNodes=["a"])
    events = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(VIEWER_DATABASE_URL=pg_url, VIEWER_EVENT_SINK=f"file:{events}", VIEWER_WORKER_LEASE_SECONDS="1",
               VIEWER_WORKER_BATCH="20")
    first = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert await wait_until(lambda: _fewer_dirty(app, user, n), timeout=60, interval=0.005)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    second = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert await wait_until(lambda: _delivered(events, user, 2 * n), timeout=120)
    finally:
        second.terminate()
        _, err = second.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-2000:]
    for i in range(n):
        assert (await stored_enrolment(app, user, f"course-k-{i}")).status == 2
    mids = [e["mid"] for e in _events(events, user)]
    assert len(mids) == 2 * n and len(set(mids)) == 2 * n


async def _fewer_dirty(app, user, n):
    return len(await dirty_rows(app, user)) < n


def _events(path, user):
    if not path.exists():
        return []
    return [e for e in map(orjson.loads, path.read_bytes().splitlines()) if user in orjson.dumps(e).decode()]


async def _delivered(path, user, n):
    return len(_events(path, user)) >= n


@pytest.mark.parametrize("backend", ["postgres"])
async def test_redis_stopped_during_writes(client, app, user, redis_server):
    await put_collection(client, "course-rd", leafNodes=["a", "b"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-rd")
    await view(client, user, "a", "course-rd")
    assert (await summary(client, user, "course-rd"))["progress"] == 50
    redis_server.stop()
    try:
        await view(client, user, "b", "course-rd")  # acknowledged while Redis is down
        s = await summary(client, user, "course-rd")  # from the database
        assert (s["contentStatus"], s["progress"], s["status"]) == ({"a": 2, "b": 2}, 100, 2)
        await drain(app, user, worker_for(app))
        assert (await stored_enrolment(app, user, "course-rd")).status == 2
    finally:
        redis_server.start()
    s = await summary(client, user, "course-rd")
    assert (s["contentStatus"], s["status"]) == ({"a": 2, "b": 2}, 2)


async def test_a_worker_in_another_process_sees_a_new_collection_at_once(client, app, user, monkeypatch):
    """Its catalog cache still says 'unknown' (or holds the old copy) when a PUT lands elsewhere."""
    from viewer_service.services.catalog import Catalog

    # The queue is shared with the run's other tests (whose unknown collections are deferred):
    # count this learner's deferrals only.
    deferred, defer = [], repo.defer

    async def spy(conn, c, *args, **kw):
        if c.scope.user_id == user:
            deferred.append(c.scope)
        return await defer(conn, c, *args, **kw)
    monkeypatch.setattr(repo, "defer", spy)
    a = app.state.app
    other = Catalog(a.views.engine)  # another process's catalog, with its own cache
    try:
        w = AggregationWorker(a.views.engine, other)
        await post(client, "/v1/enrol", userId=user, collectionId="course-xp")
        await view(client, user, "a", "course-xp")
        assert await other.get("course-xp") is None  # cached as unknown
        await put_collection(client, "course-xp", leafNodes=["a", "b"])
        await drain(app, user, w)
        assert (await stored_enrolment(app, user, "course-xp")).progress == 50
        await put_collection(client, "course-xp", leafNodes=["a"])  # the old copy is still cached
        await drain(app, user, w)
        # Completed from the new copy: it was not deferred as unknown.
        assert (await stored_enrolment(app, user, "course-xp")).status == 2
        assert deferred == []
    finally:
        await other.close()


@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_worker_process_wakes_when_work_commits_not_at_its_poll(client, app, user, pg_url, tmp_path):
    """LISTEN/NOTIFY: with a 60 s fallback poll, an idle `viewer-service worker` completes an
    enrolment and delivers its events as soon as the last view end commits."""
    events = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(VIEWER_DATABASE_URL=pg_url, VIEWER_EVENT_SINK=f"file:{events}", VIEWER_WORKER_LISTEN_POLL_SECONDS="60")
    await put_collection(client, "course-wake", leafNodes=["a"])
    worker = subprocess.Popen([BIN, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert await wait_until(lambda: _listening(app), timeout=30)
        for n, learner in enumerate([f"{user}-1", f"{user}-2", f"{user}-3"]):
            # The first one may be picked up by a round already running; after its events the
            # worker is idle, asleep for 60 s unless a notification wakes it.
            await post(client, "/v1/enrol", userId=learner, collectionId="course-wake")
            await view(client, learner, "a", "course-wake")
            assert await wait_until(lambda: _delivered(events, learner, 2), timeout=20), n
            assert (await stored_enrolment(app, learner, "course-wake")).status == 2
        # The listening connection dies: the worker listens again, and is woken again.
        before = await _listening(app)
        async with app.state.app.views.engine.begin() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE datname = current_database() AND query LIKE 'LISTEN %'"))
        assert await wait_until(lambda: _listening_other_than(app, before), timeout=30)
        learner = f"{user}-4"
        await post(client, "/v1/enrol", userId=learner, collectionId="course-wake")
        await view(client, learner, "a", "course-wake")
        assert await wait_until(lambda: _delivered(events, learner, 2), timeout=20)
    finally:
        worker.terminate()
        _, err = worker.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-2000:]


async def _listening(app) -> set[int]:
    """The backends listening for worker notifications (their pids)."""
    async with app.state.app.views.reader.connect() as conn:
        return set((await conn.execute(sa.text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
        ))).scalars())


async def _listening_other_than(app, pids: set[int]) -> bool:
    now = await _listening(app)
    return bool(now) and not now & pids

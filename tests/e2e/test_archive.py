"""Archiving (docs/archive.md): the real CLI on SQLite and on PostgreSQL + Redis, against a real
serving process, checked through HTTP. Each test has its own database: an archive run takes every
completed enrolment of the database it runs on."""

from __future__ import annotations

import asyncio
import glob
import os
import random
import signal
import subprocess
import time

import httpx
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import wait_until
from servers import create_database, drop_database, free_port
from test_api_assessments import assess
from test_cli import BIN, _env, _wait_healthy
from test_metrics import scrape, value
from viewer_service.adapters.db.migrate import upgrade
from viewer_service.adapters.db.tables import (archive_chunk, archived_consumption, assessment_aggregator,
                                               user_content_consumption)

MARCH = 1_741_600_000_000  # 2025-03-10
SEPTEMBER = 1_757_000_000_000  # 2025-09-04
ENROLLED = 1_735_700_000_000  # 2025-01-01


@pytest.fixture
def db_url(request, backend, tmp_path):
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'viewer.db'}"
        upgrade(url)
        yield url
        return
    pg = request.getfixturevalue("pg_server")
    dsn = create_database(pg.admin_dsn)
    url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    upgrade(url)
    yield url
    drop_database(pg.admin_dsn, dsn)


@pytest.fixture
def env(request, backend, db_url, tmp_path) -> dict:
    e = _env(VIEWER_DATABASE_URL=db_url, VIEWER_WORKER_IN_SERVE="true", VIEWER_WORKER_POLL_SECONDS="0.05",
             VIEWER_REPAIR_INTERVAL_SECONDS="0.05", VIEWER_EVENT_SINK=f"file:{tmp_path / 'events.jsonl'}",
             VIEWER_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    if backend == "postgres":
        e.update(VIEWER_REDIS_URL=request.getfixturevalue("redis_server").url,
                 VIEWER_REDIS_PREFIX=f"vt-arc-{random.getrandbits(32):x}:")
    return e


@pytest.fixture
async def client(env, tmp_path):
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--port", str(port)], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            yield c
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cli(env, *args, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)


async def post(c, path, **request):
    r = await c.post(path, json={"request": request})
    return r.status_code, r.json()


async def complete(c, user, course, leaves, ts, details=None):
    await c.put(f"/v1/collection/{course}", json={"request": {"name": course, "leafNodes": leaves}})
    st, body = await post(c, "/v1/enrol", userId=user, collectionId=course, enrolledDate=ENROLLED)
    assert st == 200, body
    for i, leaf in enumerate(leaves):
        keys = {"userId": user, "collectionId": course, "contentId": leaf, "ts": ts + i}
        assert (await post(c, "/v1/view/start", **keys))[0] == 200
        if details is not None:
            st, body = await post(c, "/v1/view/update", **keys, progress=50, progressDetails=details)
            assert st == 200, body
        assert (await post(c, "/v1/view/end", **keys))[0] == 200


async def summary(c, user, course):
    st, body = await post(c, "/v1/summary/read", userId=user, collectionId=course)
    assert st == 200, body
    return body["result"]


async def view_read(c, user, course, *contents):
    st, body = await post(c, "/v1/view/read", userId=user, collectionId=course, contentId=list(contents))
    assert st == 200, body
    return {x["identifier"]: x for x in body["result"]["contents"]}


async def scores(c, user, course, content):
    st, body = await post(c, "/v1/assessment/read", userId=user, collectionId=course, contentId=[content],
                          fields=["attempts"])
    assert st == 200, body
    return body["result"]["contents"][0]


async def completed(c, user, course) -> bool:
    return (await summary(c, user, course))["status"] == 2


async def count(url, table, user=None) -> int:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            q = sa.select(sa.func.count()).select_from(table)
            if user is not None:
                q = q.where(table.c.user_id == user)
            return (await conn.execute(q)).scalar_one()
    finally:
        await engine.dispose()


async def kept_attempt_ids(url, user, content) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(archived_consumption.c.attempt_ids).where(
                archived_consumption.c.user_id == user, archived_consumption.c.content_id == content))).scalar_one()
    finally:
        await engine.dispose()


def file_users(root) -> set[str]:
    users = set()
    for path in glob.glob(f"{root}/**/*.parquet", recursive=True):
        users |= set(pq.read_table(path, columns=["user_id"]).column("user_id").to_pylist())
    return users


async def test_archive_keeps_every_answer_then_restore_brings_the_details_back(client, env, db_url, tmp_path):
    c, root = client, str(tmp_path / "arch")
    await complete(c, "old", "course-a", ["a", "b", "quiz"], MARCH, details={"page": 7})
    st, body = await post(c, "/v1/assessment/submit", userId="old", collectionId="course-a", contentId="quiz",
                          assessments=[assess("q1", MARCH + 10, 3, 4, attempt="att-1")])
    assert st == 200, body
    st, body = await post(c, "/v1/certificate/issued", userId="old", collectionId="course-a",
                          certificate={"id": "cert-1", "name": "Done", "token": "T1", "lastIssuedOn": "2025-03-12"})
    assert st == 200, body
    await complete(c, "recent", "course-a", ["a", "b", "quiz"], SEPTEMBER)
    for u in ("old", "recent"):
        assert await wait_until(lambda u=u: completed(c, u, "course-a"), 20)
    before_view = await view_read(c, "old", "course-a", "a", "b", "quiz")
    before_summary = await summary(c, "old", "course-a")
    before_scores = await scores(c, "old", "course-a", "quiz")
    assert before_view["a"]["progressDetails"] == {"page": 7} and before_scores["attempts"] == 1

    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", root)
    assert out.returncode == 0, out.stderr
    assert "archived 1 enrolments: 3 consumption rows, 1 attempts" in out.stdout
    assert "archive: 1/1 enrolments" in out.stderr  # not a terminal: log lines, no progress bar
    assert await count(db_url, user_content_consumption, "old") == 0
    assert await count(db_url, assessment_aggregator, "old") == 0
    assert await count(db_url, archived_consumption, "old") == 3
    assert await kept_attempt_ids(db_url, "old", "quiz") == ["att-1"]
    assert await count(db_url, user_content_consumption, "recent") == 3
    # Month partitions; the raw rows, details and questions included, are in the files.
    [cons] = glob.glob(f"{root}/consumption/month=2025-03/*.parquet")
    rows = pq.read_table(cons, filters=[("user_id", "=", "old")]).to_pylist()
    assert sorted(r["content_id"] for r in rows) == ["a", "b", "quiz"]
    assert pq.ParquetFile(cons).metadata.row_group(0).column(0).compression == "ZSTD"
    [att] = glob.glob(f"{root}/attempts/month=2025-03/*.parquet")
    assert pq.read_table(att).to_pylist()[0]["attempt_id"] == "att-1"

    # Every answer stays; the archived detail says it is archived.
    after = await view_read(c, "old", "course-a", "a", "b", "quiz")
    for cid in ("a", "b", "quiz"):
        assert after[cid]["status"] == 2 and after[cid]["progress"] == 100
        assert after[cid]["lastCompletedTime"] == before_view[cid]["lastCompletedTime"]
        assert after[cid]["progressDetails"] is None and after[cid]["archived"] is True
    s = await summary(c, "old", "course-a")
    for k in ("status", "progress", "completedOn", "contentStatus", "assessmentStatus", "issuedCertificates"):
        assert s[k] == before_summary[k], k
    got = await scores(c, "old", "course-a", "quiz")
    assert (got["score"], got["max_score"], got["attempts"]) == (3.0, 4.0, 1)
    assert got["attemptDetails"] == [] and got["archived"] is True
    assert "archived" not in await scores(c, "recent", "course-a", "quiz")
    listed = (await c.get("/v1/summary/list/old")).json()["result"]["summary"]
    assert [(x["status"], x["progress"]) for x in listed] == [(2, 100)]
    assert "archived" not in (await view_read(c, "recent", "course-a", "a"))["a"]
    # A warm read after the archive is the cache's alone: no database read, so no archived-rows probe.
    before_reads = await scrape(c)
    await view_read(c, "recent", "course-a", "a")
    reads = await scrape(c)
    assert [value(reads, "viewer_cache_reads_total", result=r) - value(before_reads, "viewer_cache_reads_total",
                                                                          result=r)
            for r in ("hit", "miss", "bypass")] == [1, 0, 0]

    # The learner comes back: a new view starts normally; nothing goes down.
    st, body = await post(c, "/v1/view/start", userId="old", collectionId="course-a", contentId="a", ts=SEPTEMBER)
    assert st == 200, body
    st, body = await post(c, "/v1/view/update", userId="old", collectionId="course-a", contentId="a",
                          ts=SEPTEMBER + 1, progress=10, progressDetails={"page": 1})
    assert st == 200, body
    again = (await view_read(c, "old", "course-a", "a"))["a"]
    assert (again["status"], again["progress"], again["progressDetails"]) == (2, 100, {"page": 1})
    assert "archived" not in again and again["lastCompletedTime"] == before_view["a"]["lastCompletedTime"]
    # The archived attempt submitted again is the same attempt (Sunbird's replace): counted once.
    st, body = await post(c, "/v1/assessment/submit", userId="old", collectionId="course-a", contentId="quiz",
                          assessments=[assess("q1", SEPTEMBER + 5, 3, 4, attempt="att-1")])
    assert st == 200, body
    got = await scores(c, "old", "course-a", "quiz")
    assert (got["score"], got["attempts"]) == (3.0, 1)
    st, body = await post(c, "/v1/assessment/submit", userId="old", collectionId="course-a", contentId="quiz",
                          assessments=[assess("q1", SEPTEMBER + 10, 1, 4, attempt="att-2")])
    assert st == 200, body
    got = await scores(c, "old", "course-a", "quiz")
    assert (got["score"], got["attempts"]) == (3.0, 2)  # the archived best still counts
    assert await wait_until(lambda: completed(c, "old", "course-a"), 20)
    assert (await summary(c, "old", "course-a"))["progress"] == 100

    out = cli(env, "archive", "restore", "--user", "old")
    assert out.returncode == 0, out.stderr
    assert "restored 1 learners: 3 consumption rows, 1 attempts" in out.stdout
    assert await count(db_url, archived_consumption) == 0
    assert await count(db_url, user_content_consumption, "old") == 3
    back = await view_read(c, "old", "course-a", "a", "b", "quiz")
    assert back["b"]["progressDetails"] == {"page": 7} and "archived" not in back["b"]
    assert back["a"]["progressDetails"] == {"page": 1}  # the newer view's row stayed
    got = await scores(c, "old", "course-a", "quiz")
    assert [a["attemptId"] for a in got["attemptDetails"]] == ["att-1", "att-2"] and got["attempts"] == 2
    assert "old" not in file_users(root)  # restored rows leave the files


async def _fill(c, users: list[str]) -> None:
    sem = asyncio.Semaphore(8)

    async def one(u):
        async with sem:
            await complete(c, u, "course-k", ["a", "b"], MARCH, details={"p": u})

    await asyncio.gather(*(one(u) for u in users))
    for u in users:
        assert await wait_until(lambda u=u: completed(c, u, "course-k"), 30)


async def _journal(url) -> list:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(sa.select(archive_chunk))).all()
    finally:
        await engine.dispose()


async def _rows_by_user(url) -> tuple[set, set]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            hot = {tuple(r) for r in await conn.execute(sa.select(
                user_content_consumption.c.user_id, user_content_consumption.c.content_id))}
            arc = {tuple(r) for r in await conn.execute(sa.select(
                archived_consumption.c.user_id, archived_consumption.c.content_id))}
            return hot, arc
    finally:
        await engine.dispose()


async def test_kill_9_mid_archive_leaves_each_row_in_one_place_and_a_rerun_completes_it(client, env, db_url,
                                                                                        tmp_path):
    c, root = client, str(tmp_path / "arch")
    users = [f"k{i:02d}" for i in range(12)]
    await _fill(c, users)
    everything = {(u, cid) for u in users for cid in ("a", "b")}
    # Killed while a chunk's files are written and fsynced but its transaction has not run.
    proc = subprocess.Popen([BIN, "archive", "--completed-before", "2025-06-01", "--dir", root, "--chunk-scopes", "3"],
                            env={**env, "VIEWER_ARCHIVE_PAUSE_BEFORE_COMMIT": "60"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async def pending_written():
            return any(ch.state == "pending" and all(os.path.exists(os.path.join(ch.dir, f)) for f in ch.files)
                       for ch in await _journal(db_url))
        assert await wait_until(pending_written, 60, 0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    hot, arc = await _rows_by_user(db_url)
    assert hot | arc == everything and not hot & arc  # none in both, none in neither
    assert [ch.state for ch in await _journal(db_url)] == ["pending"]
    # The files are there, the rows are still hot: every answer is as before.
    assert (await view_read(c, "k00", "course-k", "a"))["a"]["progressDetails"] == {"p": "k00"}

    # Re-run: completes the pending chunk, then the rest.
    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", root, "--chunk-scopes", "5")
    assert out.returncode == 0, out.stderr
    assert "archived 12 enrolments: 24 consumption rows" in out.stdout
    hot, arc = await _rows_by_user(db_url)
    assert hot == set() and arc == everything
    assert {ch.state for ch in await _journal(db_url)} == {"done"}
    assert file_users(root) == set(users)
    for u in users:
        e = (await view_read(c, u, "course-k", "a", "b"))
        assert all(x["status"] == 2 and x["archived"] for x in e.values())

    # A crash while the files were being written: the chunk is abandoned, its scopes archived anew.
    out = cli(env, "archive", "restore", "--all")
    assert out.returncode == 0, out.stderr
    assert "restored 12 learners: 24 consumption rows" in out.stdout
    assert glob.glob(f"{root}/**/*.parquet", recursive=True) == []
    proc = subprocess.Popen([BIN, "archive", "--completed-before", "2025-06-01", "--dir", root, "--chunk-scopes", "4"],
                            env={**env, "VIEWER_ARCHIVE_PAUSE_BEFORE_COMMIT": "60"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert await wait_until(pending_written, 60, 0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    [ch] = await _journal(db_url)
    os.remove(os.path.join(ch.dir, ch.files[0]))  # as if the crash came before this file was complete
    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", root)
    assert out.returncode == 0, out.stderr
    assert "archived 12 enrolments: 24 consumption rows" in out.stdout
    hot, arc = await _rows_by_user(db_url)
    assert hot == set() and arc == everything
    assert ch.chunk_id not in {x.chunk_id for x in await _journal(db_url)}
    assert not any(ch.chunk_id in p for p in glob.glob(f"{root}/**/*", recursive=True))


async def test_bad_arguments_get_clear_answers(env, db_url, tmp_path):
    out = cli(env, "archive", "--completed-before", "yesterday")
    assert out.returncode == 2 and "--completed-before" in out.stderr
    out = cli(env, "archive")
    assert out.returncode == 2 and "--completed-before DATE is required" in out.stderr
    out = cli(env, "archive", "restore")
    assert out.returncode == 2 and "--user" in out.stderr
    out = cli({**env, "VIEWER_CONTEXT_MODE": "collection"}, "archive", "--completed-before", "2025-01-01")
    assert out.returncode == 2 and "strict" in out.stderr
    out = cli(env, "archive", "--completed-before", "2025-01-01", "--dir", str(tmp_path / "a"))
    assert out.returncode == 0 and "archived 0 enrolments" in out.stdout


async def test_erase_removes_the_learners_archived_rows_from_the_files(client, env, db_url, tmp_path):
    c, root = client, str(tmp_path / "arch")
    for u in ("gone", "stays"):
        await complete(c, u, "course-e", ["a", "quiz"], MARCH, details={"u": u})
        st, body = await post(c, "/v1/assessment/submit", userId=u, collectionId="course-e", contentId="quiz",
                              assessments=[assess("q1", MARCH + 10, 1, 1, attempt=f"att-{u}")])
        assert st == 200, body
        assert await wait_until(lambda u=u: completed(c, u, "course-e"), 20)
    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", root)
    assert out.returncode == 0 and "archived 2 enrolments: 4 consumption rows, 2 attempts" in out.stdout, out
    assert file_users(root) == {"gone", "stays"}

    r = await c.delete("/v1/summary/delete/gone?all")
    assert r.status_code == 200, r.json()
    erased = r.json()["result"]["erased"]
    assert erased["archived_consumption"] == 2 and erased["archive_file_rows"] == 3  # 2 rows + 1 attempt
    assert file_users(root) == {"stays"}
    assert await count(db_url, archived_consumption, "gone") == 0
    assert (await view_read(c, "gone", "course-e", "a"))["a"]["status"] == 0
    # The other learner's archived rows are intact, and restore still finds them.
    out = cli(env, "archive", "restore", "--user", "stays")
    assert out.returncode == 0 and "restored 1 learners: 2 consumption rows, 1 attempts" in out.stdout, out
    assert (await view_read(c, "stays", "course-e", "a"))["a"]["progressDetails"] == {"u": "stays"}
    assert file_users(root) == set()


async def test_reports_count_archived_scores_and_access_times(client, env, db_url, tmp_path):
    """A context's stats and roster answer the same before and after its enrolments are archived."""
    c = client
    await complete(c, "old-r", "course-r", ["a", "quiz"], MARCH)
    st, body = await post(c, "/v1/assessment/submit", userId="old-r", collectionId="course-r", contentId="quiz",
                          assessments=[assess("q1", MARCH + 10, 3, 4, attempt="att-r")])
    assert st == 200, body
    assert await wait_until(lambda: completed(c, "old-r", "course-r"), 20)

    async def reports():
        stats = (await c.get("/v1/report/context/course-r/stats")).json()["result"]
        roster = (await c.get("/v1/report/context/course-r")).json()["result"]["enrolments"]
        learner = (await c.get("/v1/report/learner/old-r")).json()["result"]
        stats.pop("generatedAt")
        learner.pop("generatedAt", None)
        return stats, roster, learner

    async def stored():  # the stats read the enrolments the worker stores
        return (await reports())[0]["completed"] == 1
    assert await wait_until(stored, 20)
    before = await reports()
    assert before[0]["assessments"][0]["learners"] == 1 and before[1][0]["assessments"]["quiz"]["score"] == 3
    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", str(tmp_path / "arch"))
    assert out.returncode == 0, out.stderr
    assert await count(db_url, user_content_consumption, "old-r") == 0
    after = await reports()
    assert after[0] == before[0], (after[0], before[0])
    assert after[1] == before[1], (after[1], before[1])
    assert after[2] == before[2], (after[2], before[2])
async def test_a_learner_writing_during_the_archive_keeps_the_scope_hot_until_the_next_run(client, env, db_url,
                                                                                          tmp_path):
    c, root = client, str(tmp_path / "arch")
    await _fill(c, ["w1", "w2"])
    proc = subprocess.Popen([BIN, "archive", "--completed-before", "2025-06-01", "--dir", root],
                            env={**env, "VIEWER_ARCHIVE_PAUSE_BEFORE_COMMIT": "4"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def pending_written():
            return any(ch.state == "pending" and all(os.path.exists(os.path.join(ch.dir, f)) for f in ch.files)
                       for ch in await _journal(db_url))
        assert await wait_until(pending_written, 60, 0.05)
        # w1 comes back between the files and the transaction: its rows changed.
        st, body = await post(c, "/v1/view/update", userId="w1", collectionId="course-k", contentId="a",
                              progress=100, progressDetails={"p": "again"})
        assert st == 200, body
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 0, err
    assert "archived 1 enrolments: 2 consumption rows" in out and "1 skipped" in out
    hot, arc = await _rows_by_user(db_url)
    assert hot == {("w1", "a"), ("w1", "b")} and arc == {("w2", "a"), ("w2", "b")}
    assert file_users(root) == {"w2"}  # w1's stale copy was dropped from the files
    assert (await view_read(c, "w1", "course-k", "a"))["a"]["progressDetails"] == {"p": "again"}
    out = cli(env, "archive", "--completed-before", "2025-06-01", "--dir", root)
    assert out.returncode == 0 and "archived 1 enrolments: 2 consumption rows" in out.stdout, out
    assert file_users(root) == {"w1", "w2"}
    out = cli(env, "archive", "restore", "--user", "w1")
    assert out.returncode == 0, out.stderr
    assert (await view_read(c, "w1", "course-k", "a"))["a"]["progressDetails"] == {"p": "again"}


def test_archived_attempts_count_once_even_on_rows_archived_before_their_ids_were_kept():
    from viewer_service.domain.assessments import StoredAttempt
    from viewer_service.domain.views import ArchivedView, RowKey
    from viewer_service.services.assessments import archived_attempt_count

    key = RowKey("u", "c", "b", "quiz")
    hot = {"a1": StoredAttempt("a1", 5, 1.0, 4.0), "a3": StoredAttempt("a3", 6, 1.0, 4.0)}
    kept = ArchivedView(key, status=2, progress=100, attempts=2, best_attempt_id="a1", best_score=3.0,
                        attempt_ids=("a1", "a2"))
    assert archived_attempt_count(hot, kept) == 3  # a1 (again), a2 (archived), a3 (new)
    legacy = ArchivedView(key, status=2, progress=100, attempts=2, best_attempt_id="a1", best_score=3.0)
    assert archived_attempt_count(hot, legacy) == 3  # a1 known by the best; the other archived one apart
    assert archived_attempt_count({}, legacy) == 2

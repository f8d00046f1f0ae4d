"""`viewer-service import sunbird DIR` run as an operator runs it (a real process) on SQLite and on
PostgreSQL + Redis, then read back through the HTTP API."""

from __future__ import annotations

import asyncio
import csv
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import wait_until
from servers import create_database, drop_database
from viewer_service.adapters.db.engine import make_engine
from viewer_service.adapters.db.migrate import upgrade
from viewer_service.api.app import create_app
from viewer_service.config import Settings
from viewer_service.domain.cqlsh import Dialect
from viewer_service.domain.scope import ContextMode

BIN = Path(sys.executable).with_name("viewer-service")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
T = 1624426660575  # 2021-06-23 05:37:40.575 UTC
TS = "2021-06-23 05:37:40.575000+0000"
DAY = 86_400_000


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request, tmp_path):
    """A fresh database of its own (the import's checkpoints are per database), and its settings."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'import.db'}"
        upgrade(url)
        yield {"VIEWER_DATABASE_URL": url}
        return
    admin = request.getfixturevalue("pg_server").admin_dsn
    dsn = create_database(admin)
    upgrade(dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    redis = request.getfixturevalue("redis_server")
    try:
        yield {"VIEWER_DATABASE_URL": dsn, "VIEWER_REDIS_URL": redis.url,
               "VIEWER_REDIS_PREFIX": f"vt-import-{uuid.uuid4().hex[:8]}:"}
    finally:
        drop_database(admin, dsn)


def write(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, Dialect)
        w.writerow(header)
        w.writerows(rows)


def run_import(env: dict, directory: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    full.update(env)
    return subprocess.run([BIN, "import", "sunbird", str(directory), *args], env=full, capture_output=True,
                          text=True, timeout=timeout)


def settings_for(env: dict, tmp_path: Path) -> Settings:
    return Settings(database_url=env["VIEWER_DATABASE_URL"], redis_url=env.get("VIEWER_REDIS_URL"),
                    redis_prefix=env.get("VIEWER_REDIS_PREFIX", "vs:"), worker_in_serve=True,
                    worker_poll_seconds=0.05, repair_interval_seconds=0.05,
                    event_sink=f"file:{tmp_path / 'events.jsonl'}", download_dir=str(tmp_path / "downloads"))


class Live:
    """The service running in this process (its worker too), reached over HTTP (ASGI)."""

    def __init__(self, settings: Settings):
        self.app = create_app(settings)

    async def __aenter__(self) -> httpx.AsyncClient:
        self._life = self.app.router.lifespan_context(self.app)
        await self._life.__aenter__()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://viewer")
        return self.client

    async def __aexit__(self, *exc):
        await self.client.aclose()
        await self._life.__aexit__(*exc)


async def post(c: httpx.AsyncClient, path: str, **request) -> dict:
    r = await c.post(path, json={"request": request})
    assert r.status_code == 200, r.text
    return r.json()["result"]


UCC_HEADER = ["userid", "courseid", "batchid", "contentid", "completedcount", "datetime", "lastaccesstime",
              "lastcompletedtime", "lastupdatedtime", "progress", "progressdetails", "status", "viewcount",
              "last_access_time", "last_completed_time", "last_updated_time"]
ENROL_HEADER = ["userid", "courseid", "batchid", "active", "addedby", "certificates", "completedon",
                "completionpercentage", "contentstatus", "datetime", "enrolleddate", "issued_certificates",
                "lastreadcontentid", "lastreadcontentstatus", "progress", "status"]
ASSESS_HEADER = ["course_id", "batch_id", "user_id", "content_id", "attempt_id", "created_on", "grand_total",
                 "last_attempted_on", "question", "total_max_score", "total_score", "updated_on"]
AGG_HEADER = ["activity_type", "activity_id", "user_id", "context_id", "agg", "agg_last_updated", "aggregates"]
QUESTION = ("[{id: 'q1', assess_ts: '2021-06-23 05:37:40.575000+0000', max_score: 2.0, score: %s, type: 'mcq', "
            "title: 'Pick \"one\", it''s easy', resvalues: [{'1': '{\"text\":\"A\"}'}], params: [], "
            "description: null, duration: 4}]")


def sunbird_export(d: Path, u1: str, u2: str) -> None:
    """Every literal form, both column generations, a malformed row and a file cut mid-row."""
    d.mkdir(exist_ok=True)
    details = '{"position": 12,\n "note": "a, \\"quoted\\" word\\nand a new line"}'  # a newline in the field
    write(d / "user_content_consumption.csv", UCC_HEADER, [
        # The old text time columns ...
        [u1, "c1", "b1", "do_1", 1, TS, "2021-06-23 05:37:40:575+0000", "2021-06-23 05:37:40:575+0000",
         "2021-06-23 05:37:40:575+0000", 100, details, 2, 3, "", "", ""],
        # ... and the new timestamp ones.
        [u1, "c1", "b1", "do_2", 0, TS, "", "", "", 40, "", 1, 1, "2021-06-24 05:37:40.575000+0000", "",
         "2021-06-24 05:37:40.575000+0000"],
        [u2, "c2", "b2", "do_9", 1, TS, "", "", "", 100, "", 2, 1, TS, TS, TS],
        [u2, "c2", "b2", "do_bad", 0, TS, "", "", "", 10, "{not json", 1, 1, TS, "", TS],  # rejected
    ])
    with open(d / "user_content_consumption.csv", "a", encoding="utf-8") as f:
        f.write(f"{u2},c2,b2,do_cut,0,2021-06-2")  # the export was cut here
    write(d / "user_enrolments.csv", ENROL_HEADER, [
        [u1, "c1", "b1", "True", "", "", "", "", "{'do_1': 2, 'do_2': 1}", TS, "2021-06-20 05:37:40:575+0000", "[]",
         "do_2", 1, 1, 1],
        [u2, "c2", "b2", "True", "", "[]", "2021-06-25 05:37:40.575000+0000", "", "{'do_9': 2}", TS, "",
         "[{'identifier': 'cert-1', 'name': 'Completion', 'lastIssuedOn': '2021-06-26', 'token': 'TK'}]",
         "do_9", 2, 1, 2],
    ])
    write(d / "assessment_aggregator.csv", ASSESS_HEADER, [
        ["c1", "b1", u1, "do_1", "a1", TS, "1.0/2.0", TS, QUESTION % "1.0", "2.0", "1.0", TS],
        ["c1", "b1", u1, "do_1", "a2", TS, "2.0/2.0", "2021-06-23 06:37:40.575000+0000", QUESTION % "2.0", "2.0",
         "2.0", TS],
    ])
    write(d / "user_activity_agg.csv", AGG_HEADER, [
        ["Course", "c1", u1, "cb:b1", "{'completedCount': 1}", f"{{'completedCount': '{TS}'}}",
         "{'completedCount': 1.0, 'score:do_old': 1.0}"],
        ["Course", "unit_1", u1, "cb:b1", "{'completedCount': 1}", "{}", "{}"],  # a unit's row: skipped
    ])


async def test_import_then_read_through_the_api(stack, tmp_path):
    u1, u2 = f"imp-{uuid.uuid4().hex[:8]}", f"imp-{uuid.uuid4().hex[:8]}"
    d = tmp_path / "export"
    sunbird_export(d, u1, u2)
    async with Live(settings_for(stack, tmp_path)) as c:
        # A live instance: the catalog knows c1 (not c2), and u1's scope is read (cached) before.
        r = await c.put("/v1/collection/c1", json={"request": {"name": "Course 1", "leafNodes": ["do_1", "do_2"]}})
        assert r.status_code == 200, r.text
        assert (await post(c, "/v1/view/read", userId=u1, collectionId="c1", contextId="b1"))["contents"] == []

        out = await asyncio.to_thread(run_import, stack, d)
        assert out.returncode == 0, out.stderr[-3000:]
        lines = out.stdout.strip().splitlines()
        assert lines[0].startswith("user_content_consumption: imported 3, merged 0, rejected 2")
        assert lines[1].startswith("user_enrolments: imported 2, merged 0, rejected 0")
        assert lines[2].startswith("assessment_aggregator: imported 2, merged 0, rejected 0")
        assert lines[3].startswith("user_activity_agg: imported 0, merged 1, rejected 0, skipped 1")
        assert lines[-1] == "imported 7, merged 1, rejected 2"
        rejects = (d / "user_content_consumption.rejects.csv").read_text()
        assert "progressdetails is not JSON" in rejects and "a cut or broken row" in rejects

        async def contents():
            got = await post(c, "/v1/view/read", userId=u1, collectionId="c1", contextId="b1")
            return {x["identifier"]: x for x in got["contents"]}

        # The scope read before the import was cached: the import's repair mark refreshes it.
        assert await wait_until(lambda: _has(contents, 2))
        got = await contents()
        assert (got["do_1"]["status"], got["do_1"]["progress"]) == (2, 100)
        assert got["do_1"]["progressDetails"] == {"position": 12, "note": 'a, "quoted" word\nand a new line'}
        assert (got["do_2"]["status"], got["do_2"]["progress"]) == (1, 40)

        scores = await post(c, "/v1/assessment/read", userId=u1, collectionId="c1", contextId="b1",
                            contentId=["do_1"])
        [score] = scores["contents"]
        assert (score["score"], score["max_score"], score["attempts"]) == (2.0, 2.0, 2)

        # c1 is known: the worker recomputes u1's progress from the imported rows.
        async def summary1():
            return await post(c, "/v1/summary/read", userId=u1, collectionId="c1", contextId="b1")
        s1 = await summary1()
        assert (s1["status"], s1["progress"], s1["contentStatus"]) == (1, 50, {"do_1": 2, "do_2": 1})
        assert s1["assessmentStatus"]["do_1"]["score"] == 2.0 and s1["enrolledDate"] == T - 3 * DAY

        # c2 is unknown: Sunbird's own figures, completion date and certificate.
        s2 = await post(c, "/v1/summary/read", userId=u2, collectionId="c2", contextId="b2")
        assert (s2["status"], s2["progress"], s2["completedOn"]) == (2, 100, T + 2 * DAY)
        assert [x["id"] for x in s2["issuedCertificates"]] == ["cert-1"]
        listed = (await c.get(f"/v1/summary/list/{u2}")).json()["result"]
        items = listed if isinstance(listed, list) else next(v for v in listed.values() if isinstance(v, list))
        assert [(x["collectionId"], x["status"]) for x in items] == [("c2", 2)]

        # And through the lms-service routes Sunbird's clients call (docs/sunbird.md).
        state = await post(c, "/v1/content/state/read", userId=u1, courseId="c1", batchId="b1",
                           contentIds=["do_1", "do_2"])
        assert sorted((x["contentId"], x["status"]) for x in state["contentList"]) == [("do_1", 2), ("do_2", 1)]
        courses = (await c.get(f"/v1/user/courses/list/{u1}")).json()["result"]["courses"]
        assert [(x["courseId"], x["batchId"], x["status"], x["progress"], x["completionPercentage"])
                for x in courses] == [("c1", "b1", 1, 1, 50)]
        assert courses[0]["enrolledDate"] == "2021-06-20 05:37:40:575+0000"

        ctx = (await c.get("/v1/context/b1")).json()["result"]
        assert ctx["type"] == "batch" and ctx["collectionIds"] == ["c1"]

        # Once the catalog learns c2 (here with a leaf Sunbird's export never completed), its
        # progress follows the catalog, and the completion Sunbird recorded stays.
        r = await c.put("/v1/collection/c2", json={"request": {"name": "Course 2", "leafNodes": ["do_9", "do_10"]}})
        assert r.status_code == 200, r.text

        async def recomputed():
            s = await post(c, "/v1/summary/read", userId=u2, collectionId="c2", contextId="b2")
            return s["progress"] == 50
        assert await wait_until(recomputed)
        s2 = await post(c, "/v1/summary/read", userId=u2, collectionId="c2", contextId="b2")
        assert (s2["status"], s2["completedOn"]) == (2, T + 2 * DAY)


async def _has(contents, n: int) -> bool:
    return len(await contents()) == n


async def test_a_rerun_changes_nothing_and_live_progress_never_goes_down(stack, tmp_path):
    u1, u2 = f"imp-{uuid.uuid4().hex[:8]}", f"imp-{uuid.uuid4().hex[:8]}"
    d = tmp_path / "export"
    sunbird_export(d, u1, u2)
    async with Live(settings_for(stack, tmp_path)) as c:
        # Live writes made before the import: further along than the export.
        ids = {"userId": u1, "collectionId": "c1", "contextId": "b1", "contentId": "do_2"}
        await post(c, "/v1/view/start", **ids)
        await post(c, "/v1/view/update", **ids, progress=80)
        first = await asyncio.to_thread(run_import, stack, d)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "user_content_consumption: imported 2, merged 1, rejected 2" in first.stdout

        async def do_2():
            got = await post(c, "/v1/view/read", userId=u1, collectionId="c1", contextId="b1", contentId=["do_2"])
            return got["contents"][0]
        row = await do_2()
        assert row["progress"] == 80 and row["status"] == 1  # not lowered to the export's 40

    before = await _dump(stack)
    again = await asyncio.to_thread(run_import, stack, d)
    assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == "imported 0, merged 0, rejected 0"
    restarted = await asyncio.to_thread(run_import, stack, d, "--restart")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert restarted.stdout.strip().splitlines()[-1] == "imported 0, merged 0, rejected 2"
    assert await _dump(stack) == before


IGNORED = {"version", "last_updated_time", "updated_at", "updated_on", "marked_at", "due_at", "seq", "created_at"}


async def _dump(env: dict) -> dict:
    engine = make_engine(Settings(database_url=env["VIEWER_DATABASE_URL"]).database_url, 1)
    out = {}
    try:
        async with engine.connect() as conn:
            for table in ("user_content_consumption", "enrolment", "assessment_aggregator", "user_activity_agg",
                          "context", "scope_dirty"):
                rows = (await conn.execute(sa.text(f"SELECT * FROM {table}"))).mappings().all()
                out[table] = sorted(repr(sorted((k, str(v)) for k, v in r.items() if k not in IGNORED)) for r in rows)
    finally:
        await engine.dispose()
    return out


async def test_an_import_killed_mid_way_resumes_to_the_same_result(stack, tmp_path, request):
    """kill -9 in the middle, run again: the same data as one clean run, and the rejects once."""
    from sunbird_gen import generate

    d = tmp_path / "export"
    generate(d, 12_000, seed=7)
    with open(d / "user_content_consumption.csv", "a", encoding="utf-8") as f:
        f.write('u,c,b,x,0,,,,,10,"{broken json",1,1,,,\n')
    env = dict(stack)
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    proc = subprocess.Popen([BIN, "import", "sunbird", str(d), "--batch-rows", "500"], env={**full, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async def committed_some() -> bool:
            return proc.poll() is None and await _rows_read(env) >= 2000
        assert await wait_until(committed_some, timeout=120, interval=0.05), "the import ended before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    resumed = await asyncio.to_thread(run_import, env, d, "--batch-rows", "500")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed after" in resumed.stdout
    got = await _dump(env)

    clean_env = await _fresh_like(stack, tmp_path, request)
    clean_dir = tmp_path / "clean"
    generate(clean_dir, 12_000, seed=7)
    with open(clean_dir / "user_content_consumption.csv", "a", encoding="utf-8") as f:
        f.write('u,c,b,x,0,,,,,10,"{broken json",1,1,,,\n')
    clean = await asyncio.to_thread(run_import, clean_env, clean_dir)
    assert clean.returncode == 0, clean.stderr[-3000:]
    want = await _dump(clean_env)
    assert {k: len(v) for k, v in got.items()} == {k: len(v) for k, v in want.items()}
    for table in want:
        assert set(got[table]) ^ set(want[table]) == set(), table
    assert (d / "user_content_consumption.rejects.csv").read_text() == \
        (clean_dir / "user_content_consumption.rejects.csv").read_text()


async def _rows_read(env: dict) -> int:
    engine = make_engine(Settings(database_url=env["VIEWER_DATABASE_URL"]).database_url, 1)
    try:
        async with engine.connect() as conn:
            r = (await conn.execute(sa.text("SELECT rows_read FROM import_checkpoint "
                                            "WHERE source = 'user_content_consumption'"))).first()
            return r[0] if r else 0
    except Exception:  # noqa: BLE001 - not migrated yet (SQLite: the import migrates it)
        return 0
    finally:
        await engine.dispose()


async def _fresh_like(stack: dict, tmp_path: Path, request) -> dict:
    if stack["VIEWER_DATABASE_URL"].startswith("sqlite"):
        return {"VIEWER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'clean.db'}"}
    admin = request.getfixturevalue("pg_server").admin_dsn
    dsn = await asyncio.to_thread(create_database, admin)
    request.addfinalizer(lambda: drop_database(admin, dsn))
    await asyncio.to_thread(upgrade, dsn.replace("postgresql://", "postgresql+asyncpg://", 1))
    return {**stack, "VIEWER_DATABASE_URL": dsn}


def test_nothing_to_read_is_an_error(tmp_path):
    env = {"VIEWER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"}
    (tmp_path / "empty").mkdir()
    out = run_import(env, tmp_path / "empty")
    assert out.returncode == 1
    assert "user_content_consumption: no user_content_consumption.csv: skipped" in out.stdout
    assert "no Sunbird export could be read" in out.stderr
    assert run_import(env, tmp_path / "missing").returncode == 2


def test_a_postgres_schema_that_is_not_current_is_refused(pg_server, tmp_path):
    dsn = create_database(pg_server.admin_dsn)
    try:
        d = tmp_path / "export"
        sunbird_export(d, "u1", "u2")
        out = run_import({"VIEWER_DATABASE_URL": dsn}, d)
        assert out.returncode == 2 and "viewer-service db upgrade" in out.stderr
    finally:
        drop_database(pg_server.admin_dsn, dsn)


def test_progress_lines_when_not_on_a_terminal(tmp_path):
    d = tmp_path / "export"
    sunbird_export(d, "u1", "u2")
    out = run_import({"VIEWER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"}, d)
    assert out.returncode == 0
    assert "user_content_consumption: starting at byte 0" in out.stderr and "user_content_consumption: done" in out.stderr


async def test_an_instance_in_collection_mode_folds_the_batches(tmp_path):
    """VIEWER_CONTEXT_MODE=collection: a course's progress in two batches becomes one, merged by
    the same rules (the completed view wins)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'modes.db'}"
    env = {"VIEWER_DATABASE_URL": url, "VIEWER_CONTEXT_MODE": "collection"}
    d = tmp_path / "export"
    d.mkdir()
    write(d / "user_content_consumption.csv", UCC_HEADER, [
        ["u1", "c1", "b1", "do_1", 0, TS, "", "", "", 30, "", 1, 1, TS, "", TS],
        ["u1", "c1", "b2", "do_1", 1, TS, "", "", "", 100, "", 2, 2, "2021-06-25 05:37:40.575000+0000",
         "2021-06-25 05:37:40.575000+0000", "2021-06-25 05:37:40.575000+0000"],
    ])
    out = await asyncio.to_thread(run_import, env, d)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("user_content_consumption: imported 1, merged 0, rejected 0")
    settings = settings_for(env, tmp_path).model_copy(update={"context_mode": ContextMode.COLLECTION})
    async with Live(settings) as c:
        got = await post(c, "/v1/view/read", userId="u1", collectionId="c1", contextId="b1", contentId=["do_1"])
        [row] = got["contents"]
        assert (row["status"], row["progress"]) == (2, 100)

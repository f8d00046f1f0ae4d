"""Summary downloads through HTTP (CSV and JSON), on SQLite and on PostgreSQL + Redis. The service's
files alone: tests/integration/test_download_files.py; a CSV row: tests/unit/test_download_rows.py."""

import asyncio
import os
import time
import uuid
from urllib.parse import quote

import jwt
import orjson
import pytest
import sqlalchemy as sa

from helpers import download_rows, files_in
from viewer_service.adapters.db.tables import download_file
from viewer_service.api.downloads import router
from viewer_service.clock import now_ms
from viewer_service.services import downloads as dl
from viewer_service.errors import DownloadNotFound
from viewer_service.services.downloads import DownloadService

SECRET = "test-secret-that-is-long-enough-for-hs256"
JWT = pytest.mark.settings(auth="jwt", jwt_secret=SECRET)


def token(sub: str, **claims) -> dict:
    body = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    return {"x-authenticated-user-token": jwt.encode(body, SECRET, algorithm="HS256")}


@pytest.fixture
def settings(settings, tmp_path):
    return settings.model_copy(update={"download_dir": str(tmp_path / "downloads")})


@pytest.fixture
async def app(app, settings):
    # Until app.py wires the download service and its routes, wire them here the same way.
    state = app.state.app
    if getattr(state, "downloads", None) is None:
        state.downloads = DownloadService(state.views.engine, state.summaries, directory=settings.download_dir,
                                          expiry_seconds=settings.download_expiry_seconds)
    if not any(getattr(r, "path", "").startswith("/v1/summary/download/") for r in app.router.routes):
        app.router.routes.extend(router.routes)
    return app


@pytest.fixture
def downloads(app) -> DownloadService:
    return app.state.app.downloads


async def ok(r) -> dict:
    assert r.status_code == 200, r.text
    return r.json()


async def consume(client, user, collection, content, *, end=True, context=None, headers=None):
    body = {"userId": user, "contentId": content, "collectionId": collection}
    if context:
        body["contextId"] = context
    for op in ("start", "end") if end else ("start",):
        await ok(await client.post(f"/v1/view/{op}", json={"request": body}, headers=headers))


async def course(client, user) -> str:
    """A registered two-leaf collection, the learner enrolled, one leaf completed."""
    cid = f"do_{uuid.uuid4().hex[:10]}"
    await ok(await client.put(f"/v1/collection/{cid}", json={"request": {"name": "Course, \"one\"",
                                                                          "leafNodes": ["a", "b"]}}))
    await ok(await client.post("/v1/enrol", json={"request": {"userId": user, "collectionId": cid}}))
    await consume(client, user, cid, "a")
    return cid


async def download(client, user, fmt=None, headers=None) -> str:
    params = {"format": fmt} if fmt else {}
    body = await ok(await client.get(f"/v1/summary/download/{quote(user, safe='')}", params=params,
                                     headers=headers))
    assert body["id"] == "api.summary.download" and body["params"]["status"] == "success"
    url = body["result"]["url"]
    assert url.startswith(f"/v1/summary/download/{quote(user, safe='')}/files/")
    return url


async def fetch(client, url, headers=None):
    r = await client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    return r




async def test_json_round_trip(client, app, user):
    cid = await course(client, user)
    url = await download(client, user)  # json by default
    r = await fetch(client, url)
    assert r.headers["content-type"] == "application/json"
    assert r.headers["content-disposition"] == f'attachment; filename="{user}_viewer_summary.json"'
    doc = orjson.loads(r.content)
    assert doc["userId"] == user and isinstance(doc["generatedAt"], int)
    assert doc["summary"] == await app.state.app.summaries.list(user)
    (s,) = doc["summary"]
    assert (s["collectionId"], s["contextId"], s["enrolled"]) == (cid, cid, True)
    assert s["contentStatus"] == {"a": 2} and s["collection"]["name"] == 'Course, "one"'


async def test_csv_round_trip(client, app, user):
    cid = await course(client, user)
    r = await fetch(client, await download(client, user, "csv"))
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{user}_viewer_summary.csv"'
    (summary,) = await app.state.app.summaries.list(user)
    (row,) = download_rows(r.text)
    assert row["userId"] == user and row["collectionId"] == cid and row["contextId"] == cid
    assert row["collectionName"] == 'Course, "one"' and row["leafNodesCount"] == "2"
    assert int(row["enrolledDate"]) == summary["enrolledDate"]
    assert row["enrolledDateIso"] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(summary["enrolledDate"] / 1000)) \
        + f".{summary['enrolledDate'] % 1000:03d}Z"
    assert row["active"] == "true" and row["status"] == str(summary["status"])
    assert row["progress"] == str(summary["progress"])
    assert row["completedOn"] == "" and row["completedOnIso"] == ""
    assert orjson.loads(row["contentStatus"]) == {"a": 2}
    assert orjson.loads(row["assessmentStatus"]) == {} and orjson.loads(row["certificates"]) == []


async def test_csv_cells_that_start_like_a_formula_are_escaped(client, user):
    learner = "=" + user
    cid = "@" + uuid.uuid4().hex[:10]
    await ok(await client.put(f"/v1/collection/{cid}", json={"request": {"name": "-2+3+cmd|' /C calc'!A0",
                                                                          "leafNodes": ["x"]}}))
    await consume(client, learner, cid, "x", context="+ctx")
    (row,) = download_rows((await fetch(client, await download(client, learner, "csv"))).text)
    assert row["userId"] == "'" + learner and row["collectionId"] == "'" + cid and row["contextId"] == "'+ctx"
    assert row["collectionName"] == "'-2+3+cmd|' /C calc'!A0"
    # The JSON file keeps values as they are.
    doc = orjson.loads((await fetch(client, await download(client, learner, "json"))).content)
    assert doc["userId"] == learner and doc["summary"][0]["collection"]["name"].startswith("-2+3")


@JWT
async def test_only_the_learner_or_an_admin_may_download(client, user):
    other = user + "-other"
    await consume(client, user, "do_c", "x", headers=token(user))
    url = await download(client, user, "csv", headers=token(user))
    assert len(download_rows((await fetch(client, url, headers=token(user))).text)) == 1
    # Another learner may neither generate nor fetch this learner's file.
    r = await client.get(f"/v1/summary/download/{user}", headers=token(other))
    assert r.status_code == 403 and r.json()["params"]["err"] == "FORBIDDEN"
    r = await client.get(url, headers=token(other))
    assert r.status_code == 403 and r.json()["params"]["err"] == "FORBIDDEN"
    assert (await client.get(url)).status_code == 401
    # Nor reach it under their own id: the token belongs to its learner.
    r = await client.get(url.replace(f"/{user}/", f"/{other}/"), headers=token(other))
    assert r.status_code == 404 and r.json()["params"]["err"] == "DOWNLOAD_NOT_FOUND"
    # Admin and service roles may do both.
    await fetch(client, url, headers=token("support-1", roles=["admin"]))
    url = await download(client, user, "json", headers=token("lms", realm_access={"roles": ["service"]}))
    assert orjson.loads((await fetch(client, url, headers=token(user))).content)["userId"] == user


async def test_unknown_token_or_another_learners_token_is_404(client, user):
    for url in (f"/v1/summary/download/{user}/files/nope", f"/v1/summary/download/{user}/files/{'x' * 200}"):
        r = await client.get(url)
        assert r.status_code == 404 and r.json()["params"]["err"] == "DOWNLOAD_NOT_FOUND"
        assert r.json()["responseCode"] == "RESOURCE_NOT_FOUND" and r.json()["id"] == "api.summary.download"
    url = await download(client, user)
    r = await client.get(url.replace(f"/{user}/", f"/{user}x/"))
    assert r.status_code == 404 and r.json()["params"]["err"] == "DOWNLOAD_NOT_FOUND"


async def test_bad_input_is_400_with_the_field(client, user):
    cases = [(f"/v1/summary/download/{user}?format=xml", "format", "INVALID_VALUE"),
             (f"/v1/summary/download/{'u' * 257}", "userId", "FIELD_TOO_LONG"),
             ("/v1/summary/download/u%01x", "userId", "INVALID_VALUE"),
             (f"/v1/summary/download/u%01x/files/{'t' * 32}", "userId", "INVALID_VALUE")]
    for url, field, code in cases:
        r = await client.get(url)
        assert r.status_code == 400, (url, r.text)
        body = r.json()
        assert body["params"]["err"] == code and body["result"]["field"] == field, body


@pytest.mark.settings(download_expiry_seconds=0)
async def test_an_expired_url_is_404_and_the_purge_removes_it(client, app, downloads, settings, user):
    url = await download(client, user, "csv")
    r = await client.get(url)
    assert r.status_code == 404 and r.json()["params"]["err"] == "DOWNLOAD_NOT_FOUND"
    assert files_in(settings.download_dir)  # expired, not yet purged
    assert await downloads.purge_expired() >= 1
    assert files_in(settings.download_dir) == []
    async with downloads.engine.connect() as conn:
        left = await conn.scalar(sa.select(sa.func.count()).select_from(download_file)
                                 .where(download_file.c.user_id == user))
    assert left == 0


async def test_expiry_follows_the_clock(client, app, tmp_path, user):
    state = app.state.app
    t = [now_ms()]
    svc = DownloadService(state.views.engine, state.summaries, directory=str(tmp_path / "clocked"),
                          expiry_seconds=60, clock=lambda: t[0])
    await consume(client, user, "do_c", "x")
    tok = (await svc.create(user, "json")).rsplit("/", 1)[1]
    path, fmt = await svc.open(user, tok)
    assert fmt == "json" and orjson.loads(open(path, "rb").read())["generatedAt"] == t[0]
    t[0] += 59_999
    await svc.open(user, tok)
    assert await dl.purge_expired(svc.engine, t[0]) >= 0 and os.path.exists(path)
    t[0] += 1
    with pytest.raises(DownloadNotFound):
        await svc.open(user, tok)
    assert await svc.purge_expired() >= 1 and not os.path.exists(path)


async def test_hundreds_of_summaries_stream_to_the_file(client, app, user, monkeypatch):
    monkeypatch.setattr(dl, "CHUNK_BYTES", 1024)  # many writes per file
    n = 300
    for start in range(0, n, 50):
        await asyncio.gather(*(consume(client, user, f"do_{i:04d}", f"leaf_{i}", end=i % 2 == 0)
                               for i in range(start, start + 50)))
    table = download_rows((await fetch(client, await download(client, user, "csv"))).text)
    assert sorted(r["collectionId"] for r in table) == [f"do_{i:04d}" for i in range(n)]
    assert {r["collectionId"]: orjson.loads(r["contentStatus"]) for r in table}["do_0002"] == {"leaf_2": 2}
    doc = orjson.loads((await fetch(client, await download(client, user, "json"))).content)
    assert len(doc["summary"]) == n and all(s["userId"] == user for s in doc["summary"])


async def test_erase_takes_the_rows_then_the_files(client, downloads, settings, user):
    urls = [await download(client, user, fmt) for fmt in ("csv", "json")]
    async with downloads.engine.begin() as conn:
        paths = await downloads.erase_files(conn, user)
    assert len(paths) == 2 and all(os.path.exists(p) for p in paths)
    assert await downloads.remove_files(paths) == 2 and files_in(settings.download_dir) == []
    for url in urls:
        assert (await client.get(url)).status_code == 404

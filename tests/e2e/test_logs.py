"""Request ids, the access log line and JSON logs; the command line explains itself."""

from __future__ import annotations

import asyncio
import io
import logging
import re
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest

from helpers import clean_env, wait_answering
from servers import free_port
from viewer_service import __version__
from viewer_service.logs import ACCESS_LOGGER, JsonFormatter, RequestIdFilter

BIN = Path(sys.executable).with_name("viewer-service")


async def test_request_id_is_returned_and_a_callers_sane_id_kept(client, user):
    req = {"request": {"userId": user, "contentId": "c1"}}
    a = await client.post("/v1/view/start", json=req)
    b = await client.post("/v1/view/start", json=req)
    assert re.fullmatch(r"[0-9a-f]{32}", a.headers["x-request-id"])
    assert a.headers["x-request-id"] != b.headers["x-request-id"]
    mine = await client.post("/v1/view/start", json=req, headers={"x-request-id": "gw-42.a:b"})
    assert mine.headers["x-request-id"] == "gw-42.a:b"
    for bad in ("has spaces", "x" * 200, "semi;colon"):
        r = await client.post("/v1/view/start", json=req, headers={"x-request-id": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"]), bad
    bad_input = await client.post("/v1/view/start", json={"request": {}}, headers={"x-request-id": "rid-400"})
    assert bad_input.status_code == 400 and bad_input.headers["x-request-id"] == "rid-400"


@pytest.fixture
def json_log():
    """A JSON handler on the root logger, as `serve` configures it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield lambda: [orjson.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old)


async def test_every_line_a_request_causes_carries_its_id(app, client, json_log):
    inner = logging.getLogger("viewer_service.tests")

    async def noisy():
        inner.warning("something inside the request")
        await asyncio.sleep(0)
        inner.info("and after an await")
        return {"ok": True}

    app.add_api_route("/tests/noisy", noisy)
    await client.get("/tests/noisy", headers={"x-request-id": "rid-noisy"})
    await client.get("/tests/noisy", headers={"x-request-id": "rid-other"})
    lines = json_log()
    mine = [x for x in lines if x["request_id"] == "rid-noisy"]
    assert [x["msg"] for x in mine if x["logger"] == "viewer_service.tests"] == [
        "something inside the request", "and after an await"]
    access = [x for x in mine if x["logger"] == ACCESS_LOGGER]
    assert len(access) == 1
    assert access[0]["method"] == "GET" and access[0]["route"] == "/tests/noisy" and access[0]["status"] == 200
    assert access[0]["duration_ms"] >= 0 and access[0]["level"] == "INFO"
    assert {x["request_id"] for x in lines if x["logger"] == "viewer_service.tests"} == {"rid-noisy", "rid-other"}


async def test_one_access_line_per_request(client, user, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c1"}})
    await client.get("/health")
    got = [(r.method, r.route, r.status) for r in caplog.records if r.name == ACCESS_LOGGER]
    assert got == [("POST", "/v1/view/start", 200), ("GET", "/health", 200)]


@pytest.mark.settings(access_log=False)
async def test_the_access_log_can_be_turned_off(client, user, caplog):
    caplog.set_level(logging.INFO, logger=ACCESS_LOGGER)
    r = await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c1"}})
    assert r.status_code == 200 and r.headers["x-request-id"]
    assert [r for r in caplog.records if r.name == ACCESS_LOGGER] == []


async def test_serve_with_json_logs(tmp_path):
    """A real server: every stderr line is JSON; the start-up line says what runs; alembic's
    chatter is gone; bodies and tokens never reach the log."""
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--port", str(port)], cwd=tmp_path, env=clean_env(VIEWER_LOG_FORMAT="json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    secret_body, secret_token = "SECRET-BODY-7f3a", "SECRET-TOKEN-9c1d"
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_answering(base + "/health", proc)
        async with httpx.AsyncClient(base_url=base) as c:
            r = await c.post("/v1/view/start", headers={"x-request-id": "rid-json-1",
                                                        "authorization": f"Bearer {secret_token}"},
                             json={"request": {"userId": "u1", "contentId": secret_body}})
            assert r.status_code == 200
            r = await c.post("/v1/view/update", headers={"x-request-id": "rid-json-2"},
                             json={"request": {"userId": "u1", "contentId": secret_body, "progress": "x"}})
            assert r.status_code == 400
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    text = err.decode()
    assert secret_body not in text and secret_token not in text
    lines = [orjson.loads(line) for line in text.splitlines()]  # every line is JSON
    assert all({"ts", "level", "logger", "msg", "request_id"} <= set(x) for x in lines)
    started = [x for x in lines if "started" in x["msg"] and x["logger"].startswith("viewer_service")]
    assert len(started) == 1
    for part in (__version__, "backend=sqlite", "cache=memory", "context_mode=strict", "carry_forward=none"):
        assert part in started[0]["msg"]
    assert not any(x["logger"].startswith("alembic") and not x["msg"].startswith("Running") for x in lines)
    access = {x["request_id"]: x for x in lines if x["logger"] == ACCESS_LOGGER}
    assert access["rid-json-1"]["route"] == "/v1/view/start" and access["rid-json-1"]["status"] == 200
    assert access["rid-json-2"]["status"] == 400 and access["rid-json-2"]["method"] == "POST"


def test_version():
    out = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"viewer-service {__version__}"


def test_no_command_prints_the_help_and_succeeds():
    out = subprocess.run([BIN], capture_output=True, text=True, timeout=60, env=clean_env())
    assert out.returncode == 0
    for command in ("serve", "worker", "db"):
        assert command in out.stdout


@pytest.mark.parametrize("argv", [["serve"], ["worker"], ["db", "upgrade"], ["db", "migrate-mode"]])
def test_every_option_says_its_default(argv):
    out = subprocess.run([BIN, *argv, "--help"], capture_output=True, text=True, timeout=60, env=clean_env())
    assert out.returncode == 0
    options = re.findall(r"^  (--[a-z-]+)", out.stdout, re.M)
    if argv == ["serve"]:
        assert set(options) >= {"--host", "--port", "--workers", "--migrate", "--log-level"}
        assert "(default: 8080)" in out.stdout and "(default: 127.0.0.1)" in out.stdout
    if argv == ["db", "upgrade"]:
        assert "(default: head)" in out.stdout
    # Each option's help (up to the next option) ends with its default, flags included.
    blocks = re.split(r"^  (?=--)", out.stdout.split("options:", 1)[1], flags=re.M)[1:]
    for block in blocks:
        if block.startswith("--help"):
            continue
        assert "(default:" in block, block

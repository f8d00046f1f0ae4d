"""A 5xx, should one ever happen, is a complete envelope response, and the client's keep-alive
connection still serves its next request (a real uvicorn server, a raw HTTP/1.1 connection)."""

import asyncio

import orjson
import pytest
import uvicorn
from asyncpg.exceptions import CannotConnectNowError
from sqlalchemy.exc import DBAPIError

from servers import free_port
from viewer_service.api.app import create_app


@pytest.fixture
async def served(settings):
    app = create_app(settings)

    async def boom():
        raise RuntimeError("a bug")

    async def restarting():
        raise DBAPIError("SELECT 1", None, CannotConnectNowError("the database system is starting up"))

    app.add_api_route("/test/boom", boom, include_in_schema=False)
    app.add_api_route("/test/restarting", restarting, include_in_schema=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="on"))
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.02)
    assert server.started
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 30)


async def _exchange(reader, writer, path: str) -> tuple[int, dict, dict]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), 10)
    return int(lines[0].split()[1]), headers, orjson.loads(body)


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_500_leaves_the_keep_alive_connection_usable(served):
    reader, writer = await asyncio.open_connection("127.0.0.1", served)
    try:
        status, headers, body = await _exchange(reader, writer, "/test/boom")
        assert status == 500 and body["params"]["err"] == "INTERNAL_ERROR" and body["responseCode"] == "SERVER_ERROR"
        assert headers.get("connection", "keep-alive") != "close"
        status, headers, body = await _exchange(reader, writer, "/test/restarting")
        assert status == 503 and body["params"]["err"] == "SERVICE_UNAVAILABLE" and headers["retry-after"].isdigit()
        status, _, body = await _exchange(reader, writer, "/health")  # the same connection, still serving
        assert status == 200 and body["result"]["healthy"] is True
    finally:
        writer.close()

"""The command line, run as a user would: real processes on real servers."""

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from servers import free_port

BIN = Path(sys.executable).with_name("viewer-service")


def _env(**kw) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env.update(kw)
    return env


async def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    async with httpx.AsyncClient() as c:
        while time.monotonic() < end:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise AssertionError(f"server exited with {proc.returncode}:\n{err[-3000:]}")
            try:
                if (await c.get(base + "/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("server did not become healthy")


@contextlib.asynccontextmanager
async def serving(env: dict, cwd: Path):
    """`viewer-service serve --migrate` on a free port, its output in cwd/serve.log: yields (base url,
    that file open for reading) once /health answers, and stops the server on the way out."""
    port = free_port()
    log = open(cwd / "serve.log", "w+b")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--migrate"], env=env, cwd=cwd,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_healthy(base, proc)
        yield base, log
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_db_upgrade_on_a_fresh_sqlite_file(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    out = subprocess.run([BIN, "db", "upgrade"], env=_env(VIEWER_DATABASE_URL=url), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "head" in out.stdout


def test_workers_without_redis_are_refused(tmp_path):
    out = subprocess.run([BIN, "serve", "--workers", "2"], env=_env(VIEWER_DATABASE_URL=f"sqlite:///{tmp_path}/x.db"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "VIEWER_REDIS_URL" in out.stderr


async def test_serve_with_no_configuration_runs_on_sqlite(tmp_path):
    port = free_port()
    proc = subprocess.Popen([BIN, "serve", "--port", str(port)], cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as c:
            r = await c.post("/v1/view/start", json={"request": {"userId": "u", "contentId": "c"}})
            assert r.status_code == 200
            svc = (await c.get("/health/service")).json()["result"]["services"]
            assert [(s["name"], s["healthy"]) for s in svc] == [("database", True), ("cache", True)]
            assert (await c.get("/docs")).status_code == 200
        assert (tmp_path / "viewer.db").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def test_two_worker_processes_on_postgres_and_redis_read_their_writes(pg_url, redis_server):
    """Several serving processes, many concurrent learners: every acknowledged write is read back."""
    port = free_port()
    env = _env(VIEWER_DATABASE_URL=pg_url, VIEWER_REDIS_URL=redis_server.url,
               VIEWER_REDIS_PREFIX=f"vt-cli-{random.getrandbits(32):x}:")
    proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--workers", "2", "--migrate"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_healthy(base, proc)
        run = random.getrandbits(32)

        async def learner(c: httpx.AsyncClient, i: int):
            ids = {"userId": f"cli-{run}-{i % 5}", "collectionId": "col", "contextId": "b"}
            cid = f"c{i}"
            assert (await c.post("/v1/view/start", json={"request": {**ids, "contentId": cid}})).status_code == 200
            for p in (20, 60):
                r = await c.post("/v1/view/update", json={"request": {**ids, "contentId": cid, "progress": p}})
                assert r.status_code == 200
                got = (await c.post("/v1/view/read", json={"request": {**ids, "contentId": [cid]}})).json()
                assert got["result"]["contents"][0]["progress"] >= p
            assert (await c.post("/v1/view/end", json={"request": {**ids, "contentId": cid}})).status_code == 200
            got = (await c.post("/v1/view/read", json={"request": {**ids, "contentId": [cid]}})).json()
            assert got["result"]["contents"][0]["status"] == 2

        async with httpx.AsyncClient(base_url=base, limits=httpx.Limits(max_connections=20)) as c:
            await asyncio.gather(*(learner(c, i) for i in range(40)))
            whole = (await c.post("/v1/view/read", json={"request": {"userId": f"cli-{run}-0", "collectionId": "col",
                                                                       "contextId": "b"}})).json()
            assert len(whole["result"]["contents"]) == 8
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"Traceback" not in err, err.decode()[-3000:]


@pytest.mark.parametrize("stack", ["sqlite", "postgres"])
async def test_acknowledged_writes_survive_a_killed_server(tmp_path, request, stack):
    """kill -9 right after the acknowledgements: a restarted server reads every acknowledged write."""
    import signal

    env = _env(VIEWER_DATABASE_URL=f"sqlite:///{tmp_path}/crash.db") if stack == "sqlite" else _env(
        VIEWER_DATABASE_URL=request.getfixturevalue("pg_url"),
        VIEWER_REDIS_URL=request.getfixturevalue("redis_server").url,
        VIEWER_REDIS_PREFIX=f"vt-crash-{random.getrandbits(32):x}:")
    user = f"crash-{random.getrandbits(32):x}"
    ids = {"userId": user, "collectionId": "col", "contextId": "b"}

    def serve():
        port = free_port()
        proc = subprocess.Popen([BIN, "serve", "--port", str(port), "--migrate"], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return proc, f"http://127.0.0.1:{port}"

    proc, base = serve()
    try:
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as c:
            async def one(i):
                body = {"request": {**ids, "contentId": f"c{i}"}}
                assert (await c.post("/v1/view/start", json=body)).status_code == 200
                assert (await c.post("/v1/view/end", json=body)).status_code == 200
            await asyncio.gather(*(one(i) for i in range(30)))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc, base = serve()
        await _wait_healthy(base, proc)
        async with httpx.AsyncClient(base_url=base) as c:
            got = (await c.post("/v1/view/read", json={"request": ids})).json()["result"]["contents"]
        assert sorted((x["identifier"], x["status"]) for x in got) == sorted((f"c{i}", 2) for i in range(30))
    finally:
        proc.kill()
        proc.wait(timeout=30)

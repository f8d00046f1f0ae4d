"""The instance context mode from the command line, run as a user would: real processes, one fresh
database per test. `serve` and `worker` refuse a database written in another mode; `db migrate-mode`
converts it."""

import random
import re
import subprocess
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from servers import create_database, drop_database, free_port
from test_cli import BIN, _env, _wait_healthy

START_TIMEOUT = 60  # bounded waits only: nothing here asserts on durations


# ---------------------------------------------------------------- helpers

def _sqlite_env(tmp_path: Path, name: str, **kw) -> dict:
    return _env(VIEWER_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / name}", **kw)


def _run(args: list[str], env: dict, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """A command that must finish: on timeout subprocess.run kills it and the test fails."""
    return subprocess.run([BIN, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _counts(stdout: str) -> dict[str, int]:
    """`context mode A -> B: rows N, rekeyed N, merged N, ...` -> {"rows": N, ...}."""
    line = next((ln for ln in stdout.splitlines() if ln.startswith("context mode ")), None)
    assert line is not None, stdout
    return {k: int(v) for k, v in re.findall(r"([a-z_]+) (\d+)", line.split(":", 1)[1])}


class Serve:
    """`viewer-service serve` on a free port; `async with` waits for /health and always stops it."""

    def __init__(self, env: dict, cwd: Path, *extra: str):
        self.env, self.cwd, self.extra = env, cwd, extra
        self.proc: subprocess.Popen | None = None
        self.base = ""

    async def __aenter__(self) -> httpx.AsyncClient:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([BIN, "serve", "--port", str(port), *self.extra], env=self.env,
                                     cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await _wait_healthy(self.base, self.proc, START_TIMEOUT)
        except BaseException:
            self._stop()
            raise
        self.client = httpx.AsyncClient(base_url=self.base, timeout=30)
        return self.client

    async def __aexit__(self, *exc) -> None:
        try:
            await self.client.aclose()
        finally:
            err = self._stop()
        if exc[0] is None:
            assert "Traceback" not in err, err[-3000:]

    def _stop(self) -> str:
        proc = self.proc
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=30)
        return (err or b"").decode(errors="replace")


async def _post_ok(c: httpx.AsyncClient, path: str, request: dict) -> dict:
    r = await c.post(path, json={"request": request})
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


async def _status(c: httpx.AsyncClient, request: dict) -> dict[str, int]:
    got = await _post_ok(c, "/v1/view/read", request)
    return {x["identifier"]: x["status"] for x in got["result"]["contents"]}


def _serve_refused(env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """`serve` in a mismatching mode must exit by itself; if it starts serving instead, the timeout
    kills it and the test fails."""
    try:
        return _run(["serve", "--port", str(free_port())], env, cwd, timeout=60)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"serve did not refuse to start:\n{e.stderr!r}") from e


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def own_pg_url(pg_url):
    """A PostgreSQL database of this test's own, on the session's server (not migrated)."""
    parts = urlsplit(pg_url)
    # Any database on the server serves as the maintenance connection for CREATE/DROP DATABASE.
    admin = urlunsplit(parts._replace(scheme="postgresql"))
    dsn = create_database(admin)
    try:
        yield dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        drop_database(admin, dsn)


# ---------------------------------------------------------------- tests

async def test_sqlite_strict_data_is_refused_in_collection_mode_until_migrated(tmp_path):
    strict = _sqlite_env(tmp_path, "modes.db")
    ids = {"userId": "u1", "contentId": "c1", "collectionId": "course1", "contextId": "batch1"}
    async with Serve(strict, tmp_path) as c:
        await _post_ok(c, "/v1/view/start", ids)
        await _post_ok(c, "/v1/view/end", ids)
        assert await _status(c, ids) == {"c1": 2}

    collection = {**strict, "VIEWER_CONTEXT_MODE": "collection"}
    out = _serve_refused(collection, tmp_path)
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "migrate-mode" in out.stderr and "strict" in out.stderr, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]

    out = _run(["db", "migrate-mode", "collection"], collection, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "strict -> collection" in out.stdout, out.stdout
    counts = _counts(out.stdout)
    assert (counts["rows"], counts["rekeyed"], counts["merged"]) == (1, 1, 0), out.stdout

    async with Serve(collection, tmp_path) as c:
        # Collection mode ignores the context: the row now lives at (course1, course1).
        assert await _status(c, {**ids, "contextId": "anything"}) == {"c1": 2}
        assert await _status(c, {**ids, "contextId": "batch1"}) == {"c1": 2}

    # The mode is recorded: strict is refused now, and migrating again changes nothing.
    out = _serve_refused(strict, tmp_path)
    assert out.returncode == 2 and "collection" in out.stderr, (out.returncode, out.stderr[-3000:])
    out = _run(["db", "migrate-mode", "collection"], collection, tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "collection -> collection" in out.stdout, out.stdout
    assert _counts(out.stdout)["rekeyed"] == 0, out.stdout


@pytest.mark.parametrize("env_mode", [None, "strict", "content"])
def test_migrate_mode_needs_the_same_mode_in_the_environment(tmp_path, env_mode):
    env = _sqlite_env(tmp_path, "needs-env.db")
    if env_mode is not None:
        env["VIEWER_CONTEXT_MODE"] = env_mode
    out = _run(["db", "migrate-mode", "collection"], env, tmp_path)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr[-3000:])
    assert "VIEWER_CONTEXT_MODE=collection" in out.stderr, out.stderr[-3000:]
    assert "context mode" not in out.stdout, out.stdout


async def test_postgres_two_contexts_merge_into_one_row_in_content_mode(tmp_path, own_pg_url, redis_server):
    import redis

    prefix = f"vt-modes-{random.getrandbits(32):x}:"
    base = _env(VIEWER_DATABASE_URL=own_pg_url, VIEWER_REDIS_URL=redis_server.url, VIEWER_REDIS_PREFIX=prefix)
    user = f"mm-{random.getrandbits(32):x}"
    b1 = {"userId": user, "contentId": "c1", "collectionId": "course1", "contextId": "batch1"}
    b2 = {**b1, "contextId": "batch2"}

    async with Serve(base, tmp_path, "--migrate") as c:  # a fresh database: records strict
        await _post_ok(c, "/v1/view/start", b1)
        await _post_ok(c, "/v1/view/end", b1)
        await _post_ok(c, "/v1/view/start", b2)
        assert await _status(c, b1) == {"c1": 2}
        assert await _status(c, b2) == {"c1": 1}

    r = redis.Redis.from_url(redis_server.url)
    try:
        cached_before = len(r.keys(f"{prefix}ucc:*"))
        assert cached_before >= 1  # the strict reads were cached: the migration has keys to drop

        content = {**base, "VIEWER_CONTEXT_MODE": "content"}
        out = _serve_refused(content, tmp_path)
        assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
        assert "migrate-mode" in out.stderr and "strict" in out.stderr, out.stderr[-3000:]

        out = _run(["db", "migrate-mode", "content"], content, tmp_path)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "strict -> content" in out.stdout, out.stdout
        counts = _counts(out.stdout)
        assert (counts["rows"], counts["rekeyed"], counts["merged"]) == (2, 2, 1), out.stdout
        assert counts.get("cache_keys_dropped") == cached_before, out.stdout
        assert r.keys(f"{prefix}ucc:*") == []
    finally:
        r.close()

    # A worker in another mode refuses too (bounded: a worker that starts would run until killed).
    for mode in ("strict", "collection"):
        try:
            out = _run(["worker"], {**base, "VIEWER_CONTEXT_MODE": mode}, tmp_path, timeout=60)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"worker in mode {mode} did not refuse to start:\n{e.stderr!r}") from e
        assert out.returncode == 2, (mode, out.returncode, out.stderr[-3000:])
        assert "migrate-mode" in out.stderr and "'content'" in out.stderr, out.stderr[-3000:]
        assert "Traceback" not in out.stderr, out.stderr[-3000:]

    async with Serve(content, tmp_path) as c:
        # Content mode ignores collection and context: one row for c1, completed.
        assert await _status(c, b1) == {"c1": 2}
        assert await _status(c, b2) == {"c1": 2}
        assert await _status(c, {**b1, "collectionId": "other", "contextId": "anything"}) == {"c1": 2}
        assert await _status(c, {"userId": user, "contentId": "c1"}) == {"c1": 2}


async def test_a_fresh_database_records_the_mode_that_starts_first(tmp_path):
    content = _sqlite_env(tmp_path, "fresh.db", VIEWER_CONTEXT_MODE="content")
    ids = {"userId": "u1", "contentId": "c1", "collectionId": "course1", "contextId": "batch1"}
    async with Serve(content, tmp_path) as c:
        await _post_ok(c, "/v1/view/start", ids)
    async with Serve(content, tmp_path) as c:
        assert await _status(c, {"userId": "u1", "contentId": "c1"}) == {"c1": 1}
    # And it is content that was recorded, not the default.
    out = _serve_refused({**content, "VIEWER_CONTEXT_MODE": "strict"}, tmp_path)
    assert out.returncode == 2 and "'content'" in out.stderr, (out.returncode, out.stderr[-3000:])


async def test_a_fresh_database_left_empty_records_the_mode_too(tmp_path):
    """No write at all in the first run: the second start in the same mode is still fine."""
    content = _sqlite_env(tmp_path, "empty.db", VIEWER_CONTEXT_MODE="content")
    async with Serve(content, tmp_path):
        pass
    async with Serve(content, tmp_path) as c:
        assert await _status(c, {"userId": "u1", "contentId": "c1"}) == {"c1": 0}


def test_carry_forward_outside_strict_mode_is_refused_with_a_clear_message(tmp_path):
    env = _sqlite_env(tmp_path, "cf.db", VIEWER_CONTEXT_MODE="content", VIEWER_CARRY_FORWARD="move")
    out = _run(["serve"], env, tmp_path)
    assert out.returncode == 2
    assert "VIEWER_CARRY_FORWARD works on top of VIEWER_CONTEXT_MODE=strict only" in out.stderr
    assert "Traceback" not in out.stderr

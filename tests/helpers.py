"""Small request helpers shared by the API tests."""

from __future__ import annotations

import csv
import io
import os
import time

import sqlalchemy as sa

from viewer_service.adapters.db.tables import scope_dirty, user_content_consumption


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def call(client, op: str, **request):
    r = await client.post(f"/v1/view/{op}", json={"request": request})
    return r.status_code, r.json()


async def read(client, **request) -> dict:
    status, body = await call(client, "read", **request)
    assert status == 200, body
    return {c["identifier"]: c for c in body["result"]["contents"]}


async def db_rows(service, user: str) -> list[dict]:
    async with service.reader.connect() as conn:
        rows = await conn.execute(sa.select(user_content_consumption).where(user_content_consumption.c.user_id == user))
        return [dict(r._mapping) for r in rows]


async def dirty_marks(service, user: str) -> list[dict]:
    async with service.reader.connect() as conn:
        rows = await conn.execute(sa.select(scope_dirty).where(scope_dirty.c.user_id == user))
        return [dict(r._mapping) for r in rows]


def clean_env(**settings) -> dict:
    """The environment for a service subprocess: none of the caller's VIEWER_* or PROMETHEUS_*."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIEWER_", "PROMETHEUS_"))}
    env.update(settings)
    return env


async def wait_answering(url: str, proc, timeout: float = 60):
    """GET `url` until it answers 200 (bounded); fails at once if the process `proc` exits."""
    import asyncio

    import httpx

    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    async with httpx.AsyncClient() as c:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"the process exited with {proc.returncode}")
            try:
                r = await c.get(url)
                if r.status_code == 200:
                    return r
            except httpx.TransportError:
                pass
            if loop.time() > end:
                raise AssertionError(f"{url} did not answer within {timeout} s")
            await asyncio.sleep(0.1)


def download_rows(text: str) -> list[dict]:
    """The rows of a download's CSV, checking its header."""
    from viewer_service.services.downloads import CSV_COLUMNS

    reader = csv.DictReader(io.StringIO(text, newline=""))
    assert tuple(reader.fieldnames) == CSV_COLUMNS
    return list(reader)


def files_in(directory) -> list[str]:
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []

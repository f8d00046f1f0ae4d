"""Small request helpers shared by the API tests."""

from __future__ import annotations

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

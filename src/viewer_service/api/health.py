"""Liveness, and the health of the database and the cache."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request

from .envelope import envelope
from .state import served

router = APIRouter(tags=["health"])
NAME = "viewer.service.health.api"


@router.get("/health", summary="Liveness")
async def health():
    return envelope("api.health", {"name": NAME, "healthy": True})


@router.get("/health/service", summary="Database and cache health")
async def health_service(request: Request):
    views = served(request).views
    db = {"name": "database", "healthy": True, "errMsg": None}
    try:
        async with views.reader.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
    except Exception as e:  # noqa: BLE001 - reported, not raised
        db.update(healthy=False, errMsg=str(e).splitlines()[0][:300])
    cache = {"name": "cache", "type": views.cache.kind, "healthy": True, "errMsg": None,
             "degraded": views.cache.degraded}
    try:
        await views.cache.ping()
    except Exception as e:  # noqa: BLE001
        cache.update(healthy=False, errMsg=str(e).splitlines()[0][:300] or type(e).__name__)
    ok = db["healthy"]  # without the cache the service still answers, from the database
    return envelope("api.health.service", {"name": NAME, "healthy": ok and cache["healthy"], "services": [db, cache]},
                    status_code=200 if ok else 503)

"""No cache: for a separate worker process when the serving process keeps its cache in-process.
Every put "fails", so what the worker writes is recorded as a cache repair, and the serving
process drops those scopes from its own cache (services/views.py repair loop)."""

from __future__ import annotations


class NullCache:
    kind = "none"

    def __init__(self) -> None:
        self.degraded = False

    async def read(self, scope, content_ids):
        return None

    async def put(self, entries, full=None):
        return not entries  # nothing to publish is no failure

    async def invalidate(self, scopes):
        return False

    async def ping(self):
        return None

    async def close(self):
        return None

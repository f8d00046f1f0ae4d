"""Catalog use cases: register a collection, and read one (from a small in-process cache, the
database, or a remote Sunbird hierarchy endpoint). Caching rules are in docs/catalog.md."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from pydantic_core import from_json
from sqlalchemy.ext.asyncio import AsyncEngine

from ..adapters.db import collections as repo, dirty
from ..adapters.db.transaction import Transactions
from ..clock import now_ms
from ..domain.collections import Collection, from_hierarchy
from ..errors import InvalidCollection

log = logging.getLogger(__name__)

CACHE_TTL_SECONDS = 5.0  # how long another process's PUT may go unseen here
CACHE_MAX_ENTRIES = 256  # documents can be large; the hot set of courses is small
FETCH_TIMEOUT_SECONDS = 5.0


class Catalog:
    def __init__(self, engine: AsyncEngine, *, fetch_url: str | None = None,
                 ttl: float = CACHE_TTL_SECONDS, max_entries: int = CACHE_MAX_ENTRIES,
                 max_document_bytes: int = 1_048_576, fetch_timeout: float = FETCH_TIMEOUT_SECONDS,
                 clock: Callable[[], float] = time.monotonic, now: Callable[[], int] = now_ms):
        self.engine = engine
        self.tx = Transactions(engine)
        self.fetch_url = fetch_url.rstrip("/") if fetch_url else None
        self._http = httpx.AsyncClient(timeout=fetch_timeout) if fetch_url else None
        self.ttl, self.max_entries, self.max_bytes = ttl, max_entries, max_document_bytes
        self.clock, self.now = clock, now
        self._cache: OrderedDict[str, tuple[float, Collection | None]] = OrderedDict()  # LRU, unknowns too
        self._loading: dict[str, asyncio.Future] = {}  # one load per id at a time
        self._puts = 0  # a load that overlapped a put must not cache what it read before it

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _check_size(self, doc: dict[str, Any]) -> None:
        try:
            raw = orjson.dumps(doc)
        except TypeError as e:  # an integer beyond 64 bits: JSON columns cannot hold it
            raise InvalidCollection(f"the collection cannot be stored: {e}", "request") from None
        if len(raw) > self.max_bytes:
            raise InvalidCollection(f"the collection is larger than {self.max_bytes} bytes", "request")
        if b"\\u0000" in raw:  # PostgreSQL's JSONB cannot store it
            raise InvalidCollection("the collection may not contain the NUL character", "request")

    async def put(self, collection_id: str, doc: dict[str, Any]) -> Collection:
        """Register or replace a collection. Raises InvalidCollection for a malformed document."""
        c = from_hierarchy(doc, collection_id)
        self._check_size(doc)
        now = self.now()

        async def upsert(conn):
            old = await repo.structure(conn, collection_id)
            await repo.upsert(conn, c, now)
            if old != await repo.structure(conn, collection_id):
                # Scopes waiting for it, or computed against the old structure, are due now.
                await dirty.requeue_collection(conn, collection_id, now)

        await self.tx.write(upsert)
        c = replace(c, updated_at=now)
        self._puts += 1
        self._loading.pop(collection_id, None)
        self._remember(collection_id, c)
        return c

    async def get(self, collection_id: str) -> Collection | None:
        """The collection, or None if neither the database nor the remote catalog knows it."""
        hit = self._cache.get(collection_id)
        if hit is not None and hit[0] > self.clock():
            self._cache.move_to_end(collection_id)
            return hit[1]
        future = self._loading.get(collection_id)
        if future is None:
            future = self._loading[collection_id] = asyncio.ensure_future(self._load(collection_id))
            future.add_done_callback(lambda f: self._loading.pop(collection_id, None)
                                     if self._loading.get(collection_id) is f else None)
        # Shielded: one caller giving up must not cancel the load the others wait for.
        return await asyncio.shield(future)

    async def get_in(self, conn, collection_id: str) -> Collection | None:
        """The collection as the caller's transaction reads it: from this cache or through `conn`,
        never another connection or the remote catalog, which a write transaction must not wait
        on. None when only the remote catalog may know it."""
        hit = self._cache.get(collection_id)
        if hit is not None and hit[1] is not None and hit[0] > self.clock():
            return hit[1]
        puts = self._puts
        c = await repo.load(conn, collection_id)
        if c is not None and puts == self._puts:
            self._remember(collection_id, c)
        return c

    def _remember(self, collection_id: str, c: Collection | None) -> None:
        self._cache[collection_id] = (self.clock() + self.ttl, c)
        self._cache.move_to_end(collection_id)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _load(self, collection_id: str) -> Collection | None:
        puts = self._puts
        c = await self.tx.read(lambda conn: repo.load(conn, collection_id))
        if c is None and self._http is not None:
            c = await self._fetch_and_store(collection_id)
        if puts == self._puts:
            self._remember(collection_id, c)
        return c

    async def _fetch_and_store(self, collection_id: str) -> Collection | None:
        c = await self._fetch(collection_id)
        if c is None:
            return None
        now = self.now()

        async def insert(conn):
            if not await repo.insert_absent(conn, c, now):
                return await repo.load(conn, collection_id)  # a PUT got there first
            await dirty.requeue_collection(conn, collection_id, now)
            return replace(c, updated_at=now)

        return await self.tx.write(insert)

    async def _fetch(self, collection_id: str) -> Collection | None:
        """GET {url}/{id} -> {"result": {"content": <hierarchy>}}. Any failure means unknown."""
        url = f"{self.fetch_url}/{quote(collection_id, safe='')}"
        try:
            async with self._http.stream("GET", url, headers={"accept": "application/json"}) as r:
                if r.status_code == 404:
                    return None
                r.raise_for_status()
                body = bytearray()
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ValueError(f"the hierarchy is larger than {self.max_bytes} bytes")
            doc = from_json(bytes(body))["result"]["content"]  # large integers kept, then refused
            c = from_hierarchy(doc, collection_id)
            self._check_size(doc)
            return c
        except Exception as e:  # noqa: BLE001 - a remote failure is "unknown", never a 500
            log.warning("catalog fetch of %r from %s failed: %r", collection_id, url, e)
            return None

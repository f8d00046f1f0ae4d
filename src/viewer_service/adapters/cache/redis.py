"""Redis scope cache: one hash per learner scope, merged by a Lua script."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from importlib.resources import files

import asyncio
import contextlib

from redis.exceptions import RedisError

from ...batching import Batcher
from ...domain.scope import Scope
from ...domain.views import ViewEntry
from ..redis_conn import by_slot, connect, tag
from .base import FULL_MARK
from .codec import decode, encode

log = logging.getLogger(__name__)
_PUT = files(__package__).joinpath("put.lua").read_text()
READ_BACKOFF_SECONDS = 1.0


def scope_key(prefix: str, s: Scope) -> str:
    # Length prefixes keep ids that contain ':' from colliding. The learner is the hash tag: all of
    # one learner's scopes share a Redis Cluster slot. (A '}' inside a user id ends the tag early,
    # but at the same place in every key of that learner, so they still share it.)
    user = tag(f"{len(s.user_id)}:{s.user_id}")
    return f"{prefix}ucc:{user}:{len(s.collection_id)}:{s.collection_id}:{s.context_id}"


class RedisCache:
    kind = "redis"

    def __init__(self, url: str, prefix: str = "vs:", ttl_seconds: int = 0, timeout: float = 1.0,
                 max_connections: int = 32, cluster: bool = False):
        self.degraded = False
        self.prefix = prefix
        self.cluster = cluster
        self._ttl = str(ttl_seconds)
        self.client = connect(url, cluster=cluster, timeout=timeout, max_connections=max_connections)
        # A cluster client fails, not waits, when a node's pool is full: bursts queue here instead.
        self._gate = asyncio.Semaphore(max_connections) if cluster else contextlib.nullcontext()
        self._put = self.client.register_script(_PUT)
        # Concurrent reads share one pipelined round trip: redis-py costs ~60 µs of CPU per
        # command alone, ~15 µs per command in a pipeline.
        self._reads = Batcher(self._read_many, max_batch=256, flushers=2, name="cache_reads")
        self._skip_reads_until = 0.0

    def key(self, s: Scope) -> str:
        return scope_key(self.prefix, s)

    async def read(self, scope, content_ids):
        if time.monotonic() < self._skip_reads_until:
            return None  # Redis just failed: answer from the database without waiting on it
        self._reads.start()
        return await self._reads.submit((self.key(scope), content_ids))

    async def _read_many(self, reads):
        try:
            async with self._gate, self.client.pipeline(transaction=False) as pipe:
                for key, content_ids in reads:
                    if content_ids is None:
                        pipe.hgetall(key)
                    else:
                        pipe.hmget(key, [FULL_MARK, *content_ids])
                replies = await pipe.execute()
        except RedisError as e:
            log.warning("cache read failed: %s", e)
            self._skip_reads_until = time.monotonic() + READ_BACKOFF_SECONDS
            return [None] * len(reads)
        return [_found(reply, ids) for (_, ids), reply in zip(reads, replies)]

    async def put(self, entries, full=None):
        by_scope: dict[Scope, list] = defaultdict(list)
        if full is not None:
            by_scope[full]
        for scope, cid, version, entry in entries:
            by_scope[scope] += [cid, b"%d|" % version + encode(entry)]
        scopes = list(by_scope)
        keys = [self.key(s) for s in scopes]
        # One script call for the whole batch on a single node; on a cluster one per slot (a
        # script may only touch keys of one slot), all in flight together.
        try:
            if self.cluster:
                await asyncio.gather(*(self._put_group([scopes[i] for i in g], [keys[i] for i in g], by_scope, full)
                                       for g in by_slot(keys).values()))
            else:
                await self._put_group(scopes, keys, by_scope, full)
            return True
        except RedisError as e:
            log.warning("cache update failed: %r", e)
            return False

    async def _put_group(self, scopes, keys, by_scope, full):
        args, full_at = [self._ttl, "0"], 0
        for n, scope in enumerate(scopes, 1):
            pairs = by_scope[scope]
            args += [len(pairs) // 2, *pairs]
            if scope == full:
                full_at = n
        args[1] = str(full_at)
        async with self._gate:
            await self._put(keys=keys, args=args)

    async def invalidate(self, scopes):
        if not scopes:
            return True
        try:
            async with self._gate:
                await self.client.delete(*[self.key(s) for s in scopes])
            return True
        except RedisError as e:
            log.warning("cache invalidation failed: %s", e)
            return False

    async def clear(self) -> int:
        """Drop every cached scope under this prefix (after a context mode migration)."""
        n = 0
        async for key in self.client.scan_iter(match=f"{self.prefix}ucc:*", count=1000):
            n += await self.client.delete(key)
        return n

    async def ping(self):
        await self.client.ping()

    async def close(self):
        await self._reads.close()
        await self.client.aclose()


def _found(reply, content_ids: list[str] | None) -> dict[str, ViewEntry] | None:
    """The entries of one read, or None when the scope is not cached in full."""
    if content_ids is None:
        if FULL_MARK.encode() not in reply:
            return None
        return {k.decode(): _entry(v) for k, v in reply.items() if k}
    if reply[0] is None:
        return None
    return {cid: _entry(v) for cid, v in zip(content_ids, reply[1:]) if v is not None}


def _entry(raw: bytes) -> ViewEntry:
    return decode(raw[raw.index(b"|") + 1:])

"""One way to open a Redis connection, on a single node or a Redis Cluster (VIEWER_REDIS_CLUSTER)."""

from __future__ import annotations

from collections import defaultdict

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.retry import Retry


def connect(url: str, *, cluster: bool, timeout: float, retries: int = 0, max_connections: int = 32):
    """A client that fails fast (the database answers during a Redis outage).

    On one node a blocking pool makes a burst wait for a connection instead of failing it. A
    cluster client keeps a pool per node, follows MOVED/ASK redirections itself, and fails (rather
    than waits) when a pool is full, so it keeps redis-py's unbounded default: the service's own
    batchers already bound how many commands are in flight.
    """
    common = dict(socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), retries))
    if cluster:
        return RedisCluster.from_url(url, **common)
    pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=timeout, **common)
    return aioredis.Redis(connection_pool=pool)


def tag(value: str) -> str:
    """A Redis Cluster hash tag: keys that carry the same tag live in the same slot, so one script
    may touch them together. `value` must not be empty (an empty tag hashes the whole key)."""
    return "{" + value + "}"


def by_slot(keys: list[str]) -> dict[int, list[int]]:
    """Positions of `keys` grouped by cluster slot (a script may only touch keys of one slot)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[key_slot(k.encode())].append(i)
    return groups

"""Pieces bench/run.py and bench/worker.py share: cleanup on exit, a free port, the median,
one SQL statement on PostgreSQL,
dropping the Redis keys of a prefix."""

from __future__ import annotations

import asyncio
import signal
import socket
import statistics
import sys


class BenchError(Exception):
    pass


class Cleanup:
    """Callbacks run in reverse order, each guarded, with Ctrl-C ignored meanwhile."""

    def __init__(self) -> None:
        self._items: list[tuple[str, object]] = []

    def push(self, what: str, fn) -> None:
        self._items.append((what, fn))

    def run(self) -> None:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self._items:
                what, fn = self._items.pop()
                try:
                    fn()
                except Exception as e:  # noqa: BLE001 - keep cleaning up
                    print(f"bench: cleanup of {what} failed: {e}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, old)


def _sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def plain_pg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def pg_exec(admin_url: str, sql: str, fetch: bool = False):
    import asyncpg

    async def go():
        conn = await asyncpg.connect(plain_pg_url(admin_url))
        try:
            return await (conn.fetchval(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


def redis_delete_prefix(url: str, prefix: str) -> int:
    import redis

    r = redis.Redis.from_url(url)
    n = 0
    try:
        batch = []
        for k in r.scan_iter(match=prefix + "*", count=1000):
            batch.append(k)
            if len(batch) >= 500:
                n += r.delete(*batch)
                batch = []
        if batch:
            n += r.delete(*batch)
    finally:
        r.close()
    return n

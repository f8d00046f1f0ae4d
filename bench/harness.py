"""Pieces every benchmark in bench/ shares: cleanup on exit and on signals, a free port, medians and
percentiles, number formatting, SQL on PostgreSQL, and the throwaway stores a run writes into
(a PostgreSQL database, a Redis key prefix, a SQLite file)."""

from __future__ import annotations

import asyncio
import math
import secrets
import signal
import socket
import statistics
import sys
import urllib.parse
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


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


def install_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP raise KeyboardInterrupt, so that cleanup always runs: also when
    started from a non-interactive shell with `&` (which ignores SIGINT)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)


def sayer(prefix: str):
    """A function printing progress lines `<prefix>: <msg>` on stderr."""
    return lambda msg: print(f"{prefix}: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def fmt(x, nd=0) -> str:
    if x is None or x != x:
        return "n/a"
    return f"{x:,.{nd}f}"


# --------------------------------------------------------------------------- PostgreSQL

def plain_pg_url(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def asyncpg_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+asyncpg://" + url[len(plain):]
    return url


def with_dbname(url: str, name: str) -> str:
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))


def pg_exec(admin_url: str, sql: str, fetch: bool = False):
    import asyncpg

    async def go():
        conn = await asyncpg.connect(plain_pg_url(admin_url))
        try:
            return await (conn.fetchval(sql) if fetch else conn.execute(sql))
        finally:
            await conn.close()

    return asyncio.run(go())


class PgDatabase:
    """A fresh database `<prefix><hex>` next to the maintenance database of `admin_url`."""

    def __init__(self, admin_url: str, prefix: str = "viewer_bench_"):
        self.admin_url = admin_url
        self.name = f"{prefix}{secrets.token_hex(6)}"
        self.url = with_dbname(admin_url, self.name)
        self.created = False

    def create(self) -> None:
        pg_exec(self.admin_url, f'CREATE DATABASE "{self.name}"')
        self.created = True

    def drop(self) -> None:
        if self.created:
            pg_exec(self.admin_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False


class Store:
    """Where one measurement stores into: a SQLite file in the temp dir `tmp`, or a fresh PostgreSQL
    database (`<prefix><hex>`) that `cleanup` drops. `.url` is SQLAlchemy's async URL."""

    def __init__(self, stack: str, pg_url: str, cleanup: Cleanup, tmp: str, say, prefix: str = "viewer_bench_"):
        self.stack = stack
        if stack == "postgres":
            db = PgDatabase(pg_url, prefix)
            db.create()
            cleanup.push(f"database {db.name}", lambda: (db.drop(), say(f"[{stack}] dropped database {db.name}")))
            self.name, self.url = db.name, asyncpg_url(db.url)
            say(f"[{stack}] created database {db.name}")
        else:
            self.name = f"{tmp}/viewer.db"
            self.url = f"sqlite+aiosqlite:///{self.name}"


# --------------------------------------------------------------------------- Redis

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


class RedisPrefix:
    """A fresh key prefix `bench-<hex>:` on the Redis at `url`."""

    def __init__(self, url: str, prefix: str = "bench-"):
        self.url = url
        self.prefix = f"{prefix}{secrets.token_hex(6)}:"

    def count(self) -> int:
        import redis

        r = redis.Redis.from_url(self.url)
        try:
            return sum(1 for _ in r.scan_iter(match=self.prefix + "*", count=1000))
        finally:
            r.close()

    def delete(self) -> int:
        return redis_delete_prefix(self.url, self.prefix)

"""What checking pooled PostgreSQL connections costs per checkout (docs/benchmarks.md).

Three engines made like the service's (`make_engine`), interleaved rounds in one process: no
check at all (the closed-connection listener removed), the default (that listener: is the
socket closed?), and `pre_ping` (a round trip per checkout). Each operation checks a connection
out and runs a one-row indexed lookup, at concurrency 1 and 16. Reports the median time per
operation of each and the differences.

    .venv/bin/python bench/preping.py [--pg-url postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import sqlalchemy as sa

from harness import med
from viewer_service.adapters.db.engine import make_engine


async def _round(engine, concurrency: int, ops: int) -> float:
    stmt = sa.text("SELECT 1 FROM pg_class WHERE relname = :n")  # a one-row indexed lookup

    async def one(k: int) -> None:
        for _ in range(ops // concurrency):
            async with engine.connect() as conn:
                await conn.execute(stmt, {"n": f"t{k}"})

    t0 = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(concurrency)))
    return (time.perf_counter() - t0) / (ops // concurrency * concurrency) * 1e6  # µs per op


async def main(args) -> None:
    url = args.pg_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    engines = {"none": make_engine(url, 16), "closed-check": make_engine(url, 16),
               "pre-ping": make_engine(url, 16, pre_ping=True)}
    engines["none"].sync_engine.pool.dispatch.checkout.clear()  # the listener make_engine added
    try:
        for concurrency in (1, 16):
            times = {name: [] for name in engines}
            for engine in engines.values():  # warm the pools
                await _round(engine, concurrency, 200)
            for _ in range(args.rounds):
                for name, engine in engines.items():
                    times[name].append(await _round(engine, concurrency, args.ops))
            base = med(times["none"])
            print(f"concurrency {concurrency:>2}: " + "; ".join(
                f"{name} {med(t):.1f} µs/op ({med(t) - base:+.1f}, {med(t) / base:.2f}x) rounds {[round(x) for x in t]}"
                for name, t in times.items()))
    finally:
        for engine in engines.values():
            await engine.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--ops", type=int, default=2000)
    asyncio.run(main(p.parse_args()))

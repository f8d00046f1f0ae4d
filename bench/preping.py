"""What pre-ping costs per pooled-connection checkout on PostgreSQL (docs/benchmarks.md).

The service's own engine (`make_engine`) with `pre_ping` off and on, interleaved rounds in one
process: each operation checks a connection out and runs the statement a cache-missing
`view/read` runs (one scope's rows), at concurrency 1 and 16. Reports the median time per
operation per setting and the difference.

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
    engines = {flag: make_engine(url, 16, pre_ping=flag) for flag in (False, True)}
    try:
        for concurrency in (1, 16):
            times = {False: [], True: []}
            for flag, engine in engines.items():  # warm the pools
                await _round(engine, concurrency, 200)
            for _ in range(args.rounds):
                for flag, engine in engines.items():
                    times[flag].append(await _round(engine, concurrency, args.ops))
            off, on = med(times[False]), med(times[True])
            print(f"concurrency {concurrency:>2}: pre-ping off {off:7.1f} µs/op, on {on:7.1f} µs/op, "
                  f"+{on - off:.1f} µs ({on / off:.2f}x); rounds off {[round(x) for x in times[False]]} "
                  f"on {[round(x) for x in times[True]]}")
    finally:
        for engine in engines.values():
            await engine.dispose()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--ops", type=int, default=2000)
    asyncio.run(main(p.parse_args()))

#!/usr/bin/env python3
"""What a write that completes a content costs, with and without carry-forward targets.

    .venv/bin/python bench/carry.py --quick      # smoke run (< 1 minute)
    .venv/bin/python bench/carry.py              # the recorded run

In one process, against a fresh database per stack (sqlite: a file in a temp dir; postgres: a
database `viewer_bench_c_<hex>`, dropped at the end), through `ViewService.write`, one write at a
time (latency of the whole write: group commit of one, the transaction, the cache put). Every
learner has started the organic content `do_c_<k>` (a leaf of `bench_cc`); each case times
`view/update` (plain, the floor) and then the `view/end` that completes it:

- none:   the learner has no enrolment;
- plain:  the learner is enrolled in `bench_cc` in a context with no carry-forward rule;
- copy:   the learner is enrolled in `bench_cc` in a `copy-content` context: the end carries the
          completion into the enrolment in its transaction (services/carry.py).

Cases are interleaved per round (`--rounds`), each round with fresh learners. The report gives the
median per case and the ratio of each `view/end` to the `view/update` of the same case and round.
Run it from another tree's `src` (PYTHONPATH) to compare a version without carry at write time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness import BenchError, med, pg_exec

CASES = ("none", "plain", "copy")
LEAVES = [f"do_c_{k}" for k in range(10)]


async def run_stack(stack: str, url: str, args) -> dict:
    from viewer_service.adapters.cache.memory import MemoryCache
    from viewer_service.adapters.db.engine import make_engine
    from viewer_service.adapters.db.migrate import upgrade
    from viewer_service.domain.carry import CarryRule
    from viewer_service.domain.views import End, RowKey, Start, Update
    from viewer_service.services.carry import Carry
    from viewer_service.services.catalog import Catalog
    from viewer_service.services.enrolments import EnrolmentService
    from viewer_service.services.views import ViewService

    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    views = ViewService(engine, MemoryCache(), max_skew_ms=60_000)
    await views.start()
    catalog = Catalog(engine)
    carry = Carry("strict", CarryRule(), catalog)
    views.carry = carry  # an attribute older versions simply do not use
    enrolments = EnrolmentService(engine, views, carry, catalog)
    await catalog.put("bench_cc", {"name": "c", "leafNodes": LEAVES})
    for ctx, rule in (("bench_cc_plain", None), ("bench_cc_copy", {"mode": "copy-content"})):
        body = {"type": "batch", "collectionIds": ["bench_cc"]}
        if rule:
            body["carryForward"] = rule
        await enrolments.put_context(ctx, body)
    from viewer_service.domain.scope import Scope

    times: dict[str, list[float]] = {f"{c}/{op}": [] for c in CASES for op in ("update", "end")}
    ratios: dict[str, list[float]] = {c: [] for c in CASES}
    now = int(time.time() * 1000)
    for rnd in range(args.rounds):
        learners = {c: [f"bench_c{rnd}_{c}_{i}" for i in range(args.learners)] for c in CASES}
        for c, users in learners.items():  # untimed: enrolments and started views
            for i, u in enumerate(users):
                if c != "none":
                    await enrolments.enrol(Scope(u, "bench_cc", f"bench_cc_{c}"), now - 86_400_000)
                leaf = LEAVES[i % len(LEAVES)]
                await views.write(Start(RowKey(u, leaf, leaf, leaf), now))
        for c in CASES if rnd % 2 == 0 else reversed(CASES):
            per_op = {}
            for op in ("update", "end"):
                xs = []
                for i, u in enumerate(learners[c]):
                    leaf = LEAVES[i % len(LEAVES)]
                    k = RowKey(u, leaf, leaf, leaf)
                    w = Update(k, now + 1, progress=50) if op == "update" else End(k, now + 2)
                    t0 = time.perf_counter()
                    await views.write(w)
                    xs.append(time.perf_counter() - t0)
                per_op[op] = statistics.median(xs)
                times[f"{c}/{op}"].append(per_op[op])
            ratios[c].append(per_op["end"] / per_op["update"])
        print(f"[{stack}] round {rnd + 1}: " + ", ".join(
            f"{c} update {times[f'{c}/update'][-1] * 1e3:.2f} end {times[f'{c}/end'][-1] * 1e3:.2f} ms"
            for c in CASES), file=sys.stderr)
    if args.check:
        import sqlalchemy as sa

        from viewer_service.adapters.db.tables import user_content_consumption as ucc
        async with engine.connect() as conn:
            carried = (await conn.execute(sa.select(sa.func.count()).select_from(ucc).where(
                ucc.c.context_id == "bench_cc_copy"))).scalar()
        print(f"[{stack}] rows carried into copy enrolments: {carried}", file=sys.stderr)
    await views.close()
    await catalog.close()
    await engine.dispose()
    return {"times": times, "ratios": ratios}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 rounds of 50 learners")
    p.add_argument("--stacks", default="sqlite,postgres")
    p.add_argument("--rounds", type=int, default=None, help="rounds, cases interleaved (5)")
    p.add_argument("--learners", type=int, default=None, help="learners per case and round (200)")
    p.add_argument("--check", action="store_true", help="count the carried rows at the end")
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    a = p.parse_args(argv)
    a.rounds = a.rounds or (2 if a.quick else 5)
    a.learners = a.learners or (50 if a.quick else 200)
    import viewer_service

    print(f"viewer_service from {Path(viewer_service.__file__).parent}", file=sys.stderr)
    out = {}
    for stack in [s.strip() for s in a.stacks.split(",") if s.strip()]:
        if stack == "sqlite":
            with tempfile.TemporaryDirectory() as d:
                out[stack] = asyncio.run(run_stack(stack, f"sqlite+aiosqlite:///{d}/c.db", a))
        elif stack == "postgres":
            name = f"viewer_bench_c_{secrets.token_hex(4)}"
            pg_exec(a.pg_url, f"CREATE DATABASE {name}")
            try:
                base = a.pg_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
                out[stack] = asyncio.run(run_stack(stack, f"{base}/{name}", a))
            finally:
                pg_exec(a.pg_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        else:
            raise BenchError(f"unknown stack {stack!r}")
    print(f"\n{a.rounds} rounds x {a.learners} learners per case; medians over rounds of per-round medians\n")
    print("| stack | case | update ms | end ms | end / update |")
    print("|---|---|---|---|---|")
    for stack, r in out.items():
        for c in CASES:
            print(f"| {stack} | {c} | {med(r['times'][f'{c}/update']) * 1e3:.2f} | "
                  f"{med(r['times'][f'{c}/end']) * 1e3:.2f} | {med(r['ratios'][c]):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The Sunbird import's throughput: `viewer-service import sunbird` on generated cqlsh files.

    flock /work/wt/bench.lock .venv/bin/python bench/import_bench.py --rows 1000000 --stacks postgres
    .venv/bin/python bench/import_bench.py --rows 100000 --stacks sqlite,postgres --repeats 3 --all-tables
    .venv/bin/python bench/import_bench.py --rows 100000 --stacks sqlite,postgres --base-src /tmp/base/src

Each repeat imports into a fresh database (a throwaway PostgreSQL database, or a SQLite file) with
the real CLI in its own process, and reads the rows/s it reports per table. Floors, measured in the
same run on the same file: `read` = Python's csv module reading the file in cqlsh's dialect (no
mapping, no database: the least any import in Python pays); `copy` (PostgreSQL) = PostgreSQL's own
COPY of the file into an unindexed table of text columns (the least the database pays).
Generated files are cached under --cache (bench/sunbird_gen.py). With --base-src, every repeat
also imports with another checkout's code (before/after in one sitting, interleaved)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from harness import med, pg_exec  # noqa: E402
from sunbird_gen import generate  # noqa: E402

from viewer_service.domain.cqlsh import Dialect  # noqa: E402

BIN = Path(sys.executable).with_name("viewer-service")
LINE = re.compile(r"^(\w+): imported (\d+), merged (\d+), rejected (\d+).*\((\d+) rows read in ([\d.]+) s")


def files_for(rows: int, cache: Path, all_tables: bool) -> Path:
    src = cache / f"sunbird-{rows}"
    if not (src / "user_content_consumption.csv").exists():
        print(f"generating {rows} rows into {src} ...", file=sys.stderr)
        generate(src, rows, seed=1, only_consumption=not all_tables)
    if all_tables:
        return src
    only = cache / f"sunbird-{rows}-ucc"
    only.mkdir(parents=True, exist_ok=True)
    link = only / "user_content_consumption.csv"
    if not link.exists():
        link.symlink_to(src / "user_content_consumption.csv")
    return only


def read_floor(path: Path) -> float:
    t = time.perf_counter()
    with open(path, newline="", encoding="utf-8") as f:
        n = sum(1 for _ in csv.reader(f, Dialect)) - 1
    return n / (time.perf_counter() - t)


def copy_floor(admin: str, path: Path) -> float:
    import asyncpg

    name = f"viewer_bench_{uuid.uuid4().hex[:8]}"
    pg_exec(admin, f'CREATE DATABASE "{name}"')
    try:
        async def go():
            conn = await asyncpg.connect(admin.rsplit("/", 1)[0] + "/" + name)
            try:
                with open(path, encoding="utf-8") as f:
                    header = next(csv.reader(f, Dialect))
                await conn.execute(f"CREATE TABLE raw ({', '.join(f'c{i} text' for i in range(len(header)))})")
                t = time.perf_counter()
                await conn.copy_to_table("raw", source=str(path), format="csv", header=True, escape="\\")
                n = await conn.fetchval("SELECT count(*) FROM raw")
                return n / (time.perf_counter() - t)
            finally:
                await conn.close()
        return asyncio.run(go())
    finally:
        pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_import(stack: str, admin: str, directory: Path, batch: int, src: Path | None = None) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    if src is not None:  # another checkout's code (its src/), run by this venv
        env["PYTHONPATH"] = str(src)
    name = None
    tmp = tempfile.mkdtemp(prefix="import-bench-")
    if stack == "postgres":
        name = f"viewer_bench_{uuid.uuid4().hex[:8]}"
        pg_exec(admin, f'CREATE DATABASE "{name}"')
        env["VIEWER_DATABASE_URL"] = admin.rsplit("/", 1)[0] + "/" + name
        subprocess.run([BIN, "db", "upgrade"], env=env, check=True, capture_output=True)
    else:
        env["VIEWER_DATABASE_URL"] = f"sqlite:///{tmp}/bench.db"
        subprocess.run([BIN, "db", "upgrade"], env=env, check=True, capture_output=True)
    try:
        t = time.perf_counter()
        out = subprocess.run([BIN, "import", "sunbird", str(directory), "--batch-rows", str(batch),
                              "--rejects-dir", tmp], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if out.returncode != 0:
            raise SystemExit(f"import failed:\n{out.stderr[-3000:]}")
        tables = {}
        for line in out.stdout.splitlines():
            m = LINE.match(line)
            if m:
                tables[m.group(1)] = {"imported": int(m.group(2)), "rejected": int(m.group(4)),
                                      "rows": int(m.group(5)), "seconds": float(m.group(6))}
        return wall, tables
    finally:
        if name:
            pg_exec(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=100_000, help="consumption rows")
    p.add_argument("--stacks", default="postgres", help="sqlite,postgres")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-rows", type=int, default=20_000)
    p.add_argument("--all-tables", action="store_true", help="also enrolments, attempts and aggregates")
    p.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--src", type=Path, help="import with the code in this src/ directory instead of this checkout's "
                   "(a snapshot: edits during a long run do not leak in)")
    p.add_argument("--base-src", type=Path, help="also import with the code in this src/ directory (e.g. an "
                   "export of main: git archive main src | tar -x -C /tmp/base), interleaved: before/after")
    p.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "viewer-import-bench")
    a = p.parse_args()
    directory = files_for(a.rows, a.cache, a.all_tables)
    ucc = directory / "user_content_consumption.csv"
    size_mb = ucc.stat().st_size / 1e6
    print(f"# import of {a.rows} consumption rows ({size_mb:.0f} MB){' and the other tables' if a.all_tables else ''},"
          f" batch {a.batch_rows}, {a.repeats} repeats")
    variants = {"after": a.src.resolve() if a.src else None, **({"before": a.base_src.resolve()} if a.base_src else {})}
    for stack in a.stacks.split(","):
        floors_read, floors_copy = [], []
        walls = {v: [] for v in variants}
        rates = {v: [] for v in variants}
        per_table: dict[str, dict[str, list]] = {v: {} for v in variants}
        for _ in range(a.repeats):
            floors_read.append(read_floor(ucc))
            if stack == "postgres":
                floors_copy.append(copy_floor(a.pg_url, ucc))
            for v, src in variants.items():
                wall, tables = one_import(stack, a.pg_url, directory, a.batch_rows, src)
                walls[v].append(wall)
                t = tables["user_content_consumption"]
                rates[v].append(t["rows"] / t["seconds"])
                for k, x in tables.items():
                    per_table[v].setdefault(k, []).append(x["rows"] / x["seconds"] if x["seconds"] else 0)
        fr = med(floors_read)
        fc = med(floors_copy) if floors_copy else None
        print(f"\n## {stack}\n")
        print(f"- floor `read` (csv module only): {fr:,.0f} rows/s (runs: {', '.join(f'{x:,.0f}' for x in floors_read)})")
        if fc:
            print(f"- floor `copy` (PostgreSQL COPY of the file): {fc:,.0f} rows/s "
                  f"(runs: {', '.join(f'{x:,.0f}' for x in floors_copy)})")
        for v in variants:
            r = med(rates[v])
            print(f"- {v}: consumption rows/s median {r:,.0f} (runs: {', '.join(f'{x:,.0f}' for x in rates[v])}); "
                  f"whole command median {med(walls[v]):.1f} s; import / read = {r / fr:.2f}"
                  + (f"; import / copy = {r / fc:.2f}" if fc else ""))
            for k, x in per_table[v].items():
                if k != "user_content_consumption":
                    print(f"  - {k}: median {med(x):,.0f} rows/s")
        if "before" in variants:
            print(f"- after / before: {med(rates['after']) / med(rates['before']):.2f}")

if __name__ == "__main__":
    main()

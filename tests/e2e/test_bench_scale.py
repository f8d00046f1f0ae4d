"""bench/scale.py at a tiny size on both stacks, so the benchmark cannot rot: it must load, serve,
measure every phase with 2xx answers only, run the worker over its scopes, and remove what it made.
No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import redis

ROOT = Path(__file__).resolve().parents[2]


def test_scale_benchmark_runs_at_a_thousand_rows(pg_server, redis_server, tmp_path):
    cmd = [sys.executable, str(ROOT / "bench" / "scale.py"), "--sizes", "1000", "--stacks", "postgres,sqlite",
           "-d", "1", "--repeats", "1", "--worker-passes", "2", "--cold-limit", "30",
           "--pg-url", pg_server.admin_dsn, "--redis-url", redis_server.url, "--out", str(tmp_path),
           "--tmp-dir", str(tmp_path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-3000:]
    [raw] = tmp_path.glob("scale-*.json")
    results = json.loads(raw.read_text())
    assert [(r["stack"], r["rows"], r["learners"]) for r in results] == [("postgres", 1000, 5), ("sqlite", 1000, 5)]
    for r in results:
        assert "error" not in r
        assert set(r["phases"]) == {"cold_reads", "writes", "reads"}
        for phase, runs in r["phases"].items():
            for x in runs:
                assert x["requests"] > 0 and x["non2xx"] == 0 and x["timeouts"] == 0, (r["stack"], phase, x)
        # 5 learners x 10 collections: every scope is in the worker's sample, recomputed each pass.
        assert [w["scopes"] for w in r["worker"]] == [50, 50] and all(w["left"] == 0 for w in r["worker"])
        assert r["sizes"]["tables"]["user_content_consumption"]["rows"] == 1000
        assert r["sizes"]["tables"]["enrolment"]["rows"] == 50
        assert r["sizes"]["plans"]["read (load_scope)"]
    pg = results[0]
    assert pg["redis"]["scope_fields"] == 21 and pg["redis"]["scope_bytes"] > 0

    async def databases():
        conn = await asyncpg.connect(pg_server.admin_dsn)
        try:
            return {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    assert pg["database"] not in asyncio.run(databases())
    r = redis.Redis.from_url(redis_server.url)
    try:
        assert not list(r.scan_iter(match=pg["redis_prefix"] + "*"))
    finally:
        r.close()
    assert "## PostgreSQL + Redis" in p.stdout and "## SQLite" in p.stdout

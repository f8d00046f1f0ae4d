"""The contract fuzzer: schemathesis against the running service's /openapi.json, on SQLite and
on PostgreSQL + Redis, with a fixed seed and a bounded number of examples per operation.

Every check runs except positive_data_acceptance ("every schema-valid request is accepted"):
a few rules span fields or depend on the clock, which JSON Schema cannot state (docs/reliability.md)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from servers import create_database, drop_database
from test_cli import _env, serving

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
SEED, EXAMPLES = 20261130, 10


@pytest.mark.timeout(900)  # ~1 minute per stack on a quiet machine; bounded by its examples
@pytest.mark.parametrize("stack", ["sqlite", "postgres"])
async def test_the_fuzzer_finds_no_failure(tmp_path, request, stack):
    dsn = None
    if stack == "sqlite":
        env = _env(VIEWER_DATABASE_URL=f"sqlite:///{tmp_path}/contract.db")
    else:
        admin = request.getfixturevalue("pg_server").admin_dsn
        dsn = create_database(admin)  # its own database: the fuzzer's rows stay out of other tests' way
        env = _env(VIEWER_DATABASE_URL=dsn, VIEWER_REDIS_URL=request.getfixturevalue("redis_server").url,
                   VIEWER_REDIS_PREFIX=f"vt-contract-{tmp_path.name}:")
    env.update(VIEWER_EVENT_SINK=f"file:{tmp_path}/events.jsonl", VIEWER_DOWNLOAD_DIR=str(tmp_path / "downloads"))
    try:
        async with serving(env, tmp_path) as (base, _):
            out = subprocess.run(
                [SCHEMATHESIS, "run", f"{base}/openapi.json", "--checks", "all",
                 "--exclude-checks", "positive_data_acceptance", "--seed", str(SEED), "--max-examples", str(EXAMPLES),
                 "--workers", "1", "--phases", "examples,coverage,fuzzing", "--no-color", "--request-timeout", "30",
                 "--generation-database", "none", "--report-dir", str(tmp_path / "report")],
                cwd=tmp_path, capture_output=True, text=True, timeout=600)
    finally:
        if dsn:
            drop_database(request.getfixturevalue("pg_server").admin_dsn, dsn)
    server_log = (tmp_path / "serve.log").read_bytes().decode(errors="replace")
    cases = re.search(r"(\d+) generated", out.stdout)
    print(f"schemathesis on {stack}: {cases.group(0) if cases else '?'}, exit {out.returncode}")
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert cases and int(cases.group(1)) > 200, out.stdout[-2000:]
    assert "Traceback" not in server_log and "INTERNAL_ERROR" not in server_log, server_log[-3000:]

"""The test command itself: pieces run alone, the run says what it uses, hangs fail, coverage
counts the CLI processes. Each test runs pytest or coverage in a child process, as a developer would."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def _env(**kw) -> dict:
    # The child is a run of its own: not an xdist worker, not inside this run's coverage.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "COVERAGE_", "COV_CORE_")) and k != "PYTEST_XDIST_WORKER"}
    return {**env, **kw}


def _pytest(*args, cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_a_file_of_async_tests_on_session_fixtures_passes_alone():
    # tests/integration/test_schema.py asks for the session databases from inside a running event loop.
    out = _pytest("-q", "--randomly-seed=4242", "tests/integration/test_schema.py")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert re.search(r"^2 passed", out.stdout.splitlines()[-1])
    lines = out.stdout.splitlines()
    # Said also under -q, where pytest prints no header: which servers, which order.
    assert any(x.startswith("PostgreSQL: ") for x in lines) and any(x.startswith("Redis: ") for x in lines)
    assert sum("Test order: random, seed 4242 " in x for x in lines) == 2  # at the start and at the end


def test_a_hung_async_test_fails_instead_of_hanging(tmp_path):
    (tmp_path / "test_hang.py").write_text(
        "import asyncio\n\nasync def test_hang():\n    await asyncio.sleep(3600)\n\n"
        "def test_after():\n    pass\n")
    # The project's pytest configuration (asyncio mode, the timeout plugin), a short limit for the test.
    out = _pytest("-q", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), "-o", "timeout=2",
                  "-p", "no:randomly", str(tmp_path / "test_hang.py"), cwd=tmp_path, timeout=120)
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Timeout (>2.0s)" in out.stdout and "1 failed, 1 passed" in out.stdout.splitlines()[-1]


def test_coverage_counts_the_cli_processes_a_test_starts(tmp_path):
    # A program that only runs the CLI in a child process, in another directory: with the project's
    # coverage configuration, cli.py is still measured.
    (tmp_path / "run_cli.py").write_text(
        "import subprocess, sys\nfrom pathlib import Path\n"
        "cli = Path(sys.executable).with_name('viewer-service')\n"
        "subprocess.run([str(cli), '--help'], cwd='/', check=True, capture_output=True)\n")
    rc = ["--rcfile", str(ROOT / "pyproject.toml")]
    env = _env(COVERAGE_FILE=str(tmp_path / ".coverage"))
    run = subprocess.run([PY, "-m", "coverage", "run", *rc, str(tmp_path / "run_cli.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    for cmd in (["combine"], ["json", "-o", str(tmp_path / "cov.json")]):
        done = subprocess.run([PY, "-m", "coverage", *cmd, *rc], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = json.loads((tmp_path / "cov.json").read_text())["files"]
    [cli] = [v for k, v in files.items() if k.endswith("viewer_service/cli.py")]
    assert cli["summary"]["covered_lines"] > 10  # `main` and the parser it builds

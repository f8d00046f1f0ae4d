"""`serve` and `worker` refuse to start on a PostgreSQL schema the code does not match:
exit status 2 and one line naming both revisions and the command to run."""

import subprocess

import pytest
from alembic.script import ScriptDirectory

from servers import create_database, drop_database, free_port, pg_execute
from test_cli import BIN, _env
from viewer_service.adapters.db.migrate import alembic_config, upgrade

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


@pytest.fixture
def fresh_pg(pg_server):
    dsn = create_database(pg_server.admin_dsn)
    yield dsn
    drop_database(pg_server.admin_dsn, dsn)


def _start(command: str, dsn: str, *extra: str) -> subprocess.CompletedProcess:
    args = [BIN, command, *extra] + (["--port", str(free_port())] if command == "serve" else [])
    return subprocess.run(args, env=_env(VIEWER_DATABASE_URL=dsn), capture_output=True, text=True, timeout=60)


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("viewer-service:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_never_migrated_is_refused(fresh_pg, command):
    out = _start(command, fresh_pg)
    assert out.returncode == 2, out.stderr
    line = _one_line(out.stderr)
    assert "never migrated" in line and HEAD in line and "viewer-service db upgrade" in line and "--migrate" in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_behind_is_refused(fresh_pg, command):
    upgrade(fresh_pg.replace("postgresql://", "postgresql+asyncpg://"), "0003")
    out = _start(command, fresh_pg)
    assert out.returncode == 2, out.stderr
    line = _one_line(out.stderr)
    assert "revision 0003" in line and f"needs revision {HEAD}" in line and "viewer-service db upgrade" in line


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_a_database_ahead_is_refused_even_with_migrate(fresh_pg, command):
    upgrade(fresh_pg.replace("postgresql://", "postgresql+asyncpg://"))
    pg_execute(fresh_pg, "UPDATE alembic_version SET version_num = '9999'")
    out = _start(command, fresh_pg, "--migrate")
    assert out.returncode == 2, out.stderr
    line = _one_line(out.stderr)
    assert "revision 9999" in line and f"newer than this code's {HEAD}" in line


def test_a_sqlite_file_ahead_is_refused(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'ahead.db'}"
    upgrade(url)
    import sqlite3

    with sqlite3.connect(tmp_path / "ahead.db") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    out = _start("serve", url)
    assert out.returncode == 2, out.stderr
    assert "revision 9999" in _one_line(out.stderr)

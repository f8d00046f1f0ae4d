"""Which PostgreSQL the test run uses, and the line it prints about it (tests/servers.py), decided
from the environment alone: nothing is started or connected to."""

from servers import describe_servers, pg_choice


def test_the_printed_choice_of_postgresql_follows_the_switches(monkeypatch):
    monkeypatch.setenv("VIEWER_TEST_PG_DSN", "postgresql://me:secret@db.example:5433/postgres")
    assert pg_choice() == ("env", "postgresql://me:secret@db.example:5433/postgres")
    pg_line = describe_servers()[0]
    assert "VIEWER_TEST_PG_DSN" in pg_line and "db.example:5433" in pg_line and "secret" not in pg_line
    monkeypatch.delenv("VIEWER_TEST_PG_DSN")
    monkeypatch.setenv("VIEWER_TEST_PG_FORCE_THROWAWAY", "1")
    assert pg_choice() == ("throwaway", None)
    assert describe_servers()[0].startswith("PostgreSQL: a throwaway cluster (VIEWER_TEST_PG_FORCE_THROWAWAY is set")
    assert "throwaway redis-server" in describe_servers()[1]

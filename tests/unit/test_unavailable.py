"""Which database failures are "unavailable" (503, retry) and which are bugs (500): pure logic."""

import asyncpg.exceptions as pg
import pytest
from sqlalchemy import exc

from viewer_service.adapters.db.engine import is_unavailable


def _dbapi(orig: Exception) -> exc.DBAPIError:
    return exc.DBAPIError("SELECT 1", None, orig)


@pytest.mark.parametrize("error", [
    _dbapi(pg.CannotConnectNowError("the database system is starting up")),  # 57P03
    _dbapi(pg.AdminShutdownError("terminating connection due to administrator command")),  # 57P01
    _dbapi(pg.TooManyConnectionsError("sorry, too many clients already")),  # 53300
    _dbapi(pg.ConnectionDoesNotExistError("connection was closed in the middle of operation")),
    exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached, connection timed out"),
    exc.OperationalError("SELECT 1", None, OSError("connection refused")),
    ConnectionRefusedError(111, "Connect call failed"),
    TimeoutError(),
])
def test_unavailable(error):
    assert is_unavailable(error)


def test_unavailable_through_a_cause():
    try:
        try:
            raise _dbapi(pg.CannotConnectNowError("the database system is shutting down"))
        except exc.DBAPIError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as outer:
        assert is_unavailable(outer)


@pytest.mark.parametrize("error", [
    _dbapi(pg.UndefinedTableError('relation "x" does not exist')),
    exc.IntegrityError("INSERT", None, pg.UniqueViolationError("duplicate key")),
    ValueError("a bug"),
])
def test_not_unavailable(error):
    assert not is_unavailable(error)

"""The Alembic migrations build exactly the tables the code defines."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from viewer_service.adapters.db.tables import metadata


@pytest.mark.parametrize("url_fixture", ["sqlite_url", "pg_url"])
async def test_migrations_match_the_table_definitions(request, url_fixture):
    engine = create_async_engine(request.getfixturevalue(url_fixture))
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    finally:
        await engine.dispose()
    assert diff == []

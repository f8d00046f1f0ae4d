"""Apply the schema migrations (Alembic) to a database URL."""

from importlib.resources import files

from alembic import command
from alembic.config import Config


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(files("viewer_service").joinpath("migrations")))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Synchronous: runs its own event loop (call it from a thread inside async code)."""
    command.upgrade(alembic_config(url), revision)


async def schema_behind(engine) -> str | None:
    """A message when the database's schema is not the code's (None when it is current)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
    if current != head:
        return (f"the database schema is at revision {current}, this code needs {head}: "
                f"run `viewer-service db upgrade` first")
    return None

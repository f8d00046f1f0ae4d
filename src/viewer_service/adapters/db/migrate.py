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


def schema_problem(url: str, *, will_upgrade: bool) -> str | None:
    """Why `serve`/`worker` must not start on this database, in one line; None when the schema is
    at the code's head (or will be brought there, or the database cannot be reached: the service
    then answers 503 until it can). A database never migrated, behind or ahead is refused: it
    would answer requests with errors instead."""
    import asyncio

    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from .engine import make_engine

    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    known = {rev.revision for rev in script.walk_revisions()}

    async def current() -> str | None:
        engine = make_engine(url, 1)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        finally:
            await engine.dispose()

    try:
        at = asyncio.run(current())
    except Exception:  # noqa: BLE001 - unreachable: the service says so itself (503 + /health/service)
        return None
    if at == head:
        return None
    if at is not None and at not in known:
        return (f"the database schema is at revision {at}, newer than this code's {head}: "
                f"run the viewer-service release that made it (this one cannot serve or downgrade it)")
    if will_upgrade:
        return None
    where = "was never migrated" if at is None else f"is at revision {at}"
    return (f"the database schema {where}, this code needs revision {head}: "
            f"run `viewer-service db upgrade` (or start with `serve --migrate`)")

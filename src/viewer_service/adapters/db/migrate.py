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

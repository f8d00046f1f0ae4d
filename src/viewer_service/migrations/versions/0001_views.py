"""View lifecycle: consumption rows, dirty scopes, cache repairs.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.String(256)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _scope_cols():
    return [sa.Column("user_id", Id, primary_key=True), sa.Column("collection_id", Id, primary_key=True),
            sa.Column("context_id", Id, primary_key=True)]


def upgrade() -> None:
    op.create_table(
        "user_content_consumption",
        *_scope_cols(),
        sa.Column("content_id", Id, primary_key=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("progress", sa.SmallInteger, nullable=False),
        sa.Column("progress_details", Json),
        sa.Column("progress_details_ts", sa.BigInteger),
        sa.Column("time_spent", sa.Float, nullable=False),
        sa.Column("view_count", sa.Integer, nullable=False),
        sa.Column("first_access_time", sa.BigInteger),
        sa.Column("last_access_time", sa.BigInteger),
        sa.Column("last_completed_time", sa.BigInteger),
        sa.Column("last_updated_time", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "scope_dirty",
        *_scope_cols(),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("marked_at", sa.BigInteger, nullable=False),
    )
    op.create_table("cache_repair", *_scope_cols(), sa.Column("created_at", sa.BigInteger, nullable=False))


def downgrade() -> None:
    op.drop_table("cache_repair")
    op.drop_table("scope_dirty")
    op.drop_table("user_content_consumption")

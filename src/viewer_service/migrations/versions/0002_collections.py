"""Collection catalog.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "collection",
        sa.Column("collection_id", sa.String(256), primary_key=True),
        sa.Column("document", Json, nullable=False),
        sa.Column("leaf_ids", Json, nullable=False),
        sa.Column("required_leaf_ids", Json, nullable=False),
        sa.Column("units", Json, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("collection")

"""`viewer-service import sunbird`: per-file checkpoints of the one-time migration.

Revision ID: 0007
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "import_checkpoint",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("file_id", sa.String(128), nullable=False),
        sa.Column("byte_offset", sa.BigInteger, nullable=False),
        sa.Column("rows_read", sa.BigInteger, nullable=False),
        sa.Column("rejects_offset", sa.BigInteger, nullable=False),
        sa.Column("imported", sa.BigInteger, nullable=False),
        sa.Column("merged", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("import_checkpoint")

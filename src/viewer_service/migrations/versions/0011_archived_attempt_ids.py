"""The archived attempts' ids on the kept row: a resubmitted archived attempt is counted once.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archived_consumption") as t:
        t.add_column(sa.Column("attempt_ids", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False,
                               server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("archived_consumption") as t:
        t.drop_column("attempt_ids")

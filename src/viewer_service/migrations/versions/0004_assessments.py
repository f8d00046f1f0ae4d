"""Assessments: attempts, and the best attempt on the consumption row.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Id = sa.String(256)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Appended in ContentView's field order: the batch statements rely on the column order.
    with op.batch_alter_table("user_content_consumption") as b:
        b.add_column(sa.Column("best_score", sa.Float))
        b.add_column(sa.Column("best_max_score", sa.Float))
        b.add_column(sa.Column("best_attempt_id", Id))
        b.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_table(
        "assessment_aggregator",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("collection_id", Id, primary_key=True),
        sa.Column("context_id", Id, primary_key=True),
        sa.Column("content_id", Id, primary_key=True),
        sa.Column("attempt_id", Id, primary_key=True),
        sa.Column("created_on", sa.BigInteger, nullable=False),
        sa.Column("updated_on", sa.BigInteger, nullable=False),
        sa.Column("last_attempted_on", sa.BigInteger, nullable=False),
        sa.Column("total_score", sa.Float, nullable=False),
        sa.Column("total_max_score", sa.Float, nullable=False),
        sa.Column("grand_total", sa.String(64), nullable=False),
        sa.Column("questions", Json, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("assessment_aggregator")
    with op.batch_alter_table("user_content_consumption") as b:
        for c in ("attempts", "best_attempt_id", "best_max_score", "best_score"):
            b.drop_column(c)

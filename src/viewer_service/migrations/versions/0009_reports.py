"""Reports: enrolments by context, and the scored consumption rows (a partial index).

Revision ID: 0009
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_enrolment_context", "enrolment", ["context_id", "collection_id", "user_id"],
                    postgresql_include=["status", "progress", "active", "enrolled_date", "completed_on"])
    op.create_index("ix_ucc_scored", "user_content_consumption", ["context_id", "collection_id", "content_id"],
                    postgresql_where=sa.text("attempts > 0"), sqlite_where=sa.text("attempts > 0"),
                    postgresql_include=["best_score", "best_max_score", "attempts"])


def downgrade() -> None:
    op.drop_index("ix_ucc_scored", "user_content_consumption")
    op.drop_index("ix_enrolment_context", "enrolment")

"""Reports count archived assessment scores: the scored kept rows of archived enrolments by context.

Revision ID: 0010
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_arc_scored", "archived_consumption", ["context_id", "collection_id", "content_id"],
                    postgresql_where=sa.text("attempts > 0"), sqlite_where=sa.text("attempts > 0"),
                    postgresql_include=["best_score", "best_max_score", "attempts"])


def downgrade() -> None:
    op.drop_index("ix_arc_scored", "archived_consumption")

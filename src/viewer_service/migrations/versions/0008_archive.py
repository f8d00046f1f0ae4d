"""Archiving: the kept aggregate of archived consumption rows, the archive journal, and an index
on enrolment completion dates (docs/archive.md).

Revision ID: 0008
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0005"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Id = sa.String(256)


def upgrade() -> None:
    op.create_table(
        "archived_consumption",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("collection_id", Id, primary_key=True),
        sa.Column("context_id", Id, primary_key=True),
        sa.Column("content_id", Id, primary_key=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("progress", sa.SmallInteger, nullable=False),
        sa.Column("progress_details_ts", sa.BigInteger),
        sa.Column("time_spent", sa.Float, nullable=False),
        sa.Column("view_count", sa.Integer, nullable=False),
        sa.Column("first_access_time", sa.BigInteger),
        sa.Column("last_access_time", sa.BigInteger),
        sa.Column("last_completed_time", sa.BigInteger),
        sa.Column("last_updated_time", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("best_score", sa.Float),
        sa.Column("best_max_score", sa.Float),
        sa.Column("best_attempt_id", Id),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("carried_from", Json),
        sa.Column("chunk_id", sa.String(64), nullable=False),
        sa.Column("attempt_chunks", Json, nullable=False),
        sa.Column("archived_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "archive_chunk",
        sa.Column("chunk_id", sa.String(64), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("dir", sa.String(1024), nullable=False),
        sa.Column("files", Json, nullable=False),
        sa.Column("counts", Json, nullable=False),
        sa.Column("dead_marks", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_enrolment_completed_on", "enrolment", ["completed_on"])


def downgrade() -> None:
    op.drop_index("ix_enrolment_completed_on", "enrolment")
    op.drop_table("archive_chunk")
    op.drop_table("archived_consumption")

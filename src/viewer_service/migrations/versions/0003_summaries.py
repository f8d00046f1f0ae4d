"""Collection progress: contexts, enrolments, aggregates, the work queue, events, erasures, downloads.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.String(256)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _scope_cols():
    return [sa.Column("user_id", Id, primary_key=True), sa.Column("collection_id", Id, primary_key=True),
            sa.Column("context_id", Id, primary_key=True)]


def upgrade() -> None:
    with op.batch_alter_table("scope_dirty") as b:
        b.add_column(sa.Column("due_at", sa.BigInteger, nullable=False, server_default="0"))
        b.add_column(sa.Column("claimed_by", sa.String(64)))
        b.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
    op.create_index("ix_scope_dirty_due", "scope_dirty", ["due_at"])
    op.create_index("ix_scope_dirty_collection", "scope_dirty", ["collection_id"])
    op.create_table(
        "context",
        sa.Column("context_id", Id, primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("collection_ids", Json, nullable=False),
        sa.Column("start_date", sa.BigInteger),
        sa.Column("end_date", sa.BigInteger),
        sa.Column("document", Json, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "enrolment",
        *_scope_cols(),
        sa.Column("enrolled_date", sa.BigInteger, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("issued_certificates", Json, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("completed_on", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "user_activity_agg",
        *_scope_cols(),
        sa.Column("activity_type", sa.String(32), primary_key=True),
        sa.Column("activity_id", Id, primary_key=True),
        sa.Column("aggregates", Json, nullable=False),
        sa.Column("content_status", Json, nullable=False),
        sa.Column("agg_last_updated", Json, nullable=False),
        sa.Column("progress", sa.SmallInteger, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("completed_on", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_agg_collection", "user_activity_agg", ["collection_id"])
    op.create_table(
        "event_outbox",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("event_id", sa.String(1024), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("collection_id", Id),  # the scope it is about, so an erase can drop it
        sa.Column("context_id", Id),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("due_at", sa.BigInteger, nullable=False),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_event_outbox_due", "event_outbox", ["due_at"])
    op.create_table(
        "erasure_log",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("erased_at", sa.BigInteger, primary_key=True),
        sa.Column("erase_id", sa.String(64), primary_key=True),
        sa.Column("scope", Json),
        sa.Column("counts", Json, nullable=False),
        sa.Column("requested_by", Id),
    )
    op.create_table(
        "download_file",
        sa.Column("user_id", Id, primary_key=True),
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_download_file_expires", "download_file", ["expires_at"])


def downgrade() -> None:
    for t in ("download_file", "erasure_log", "event_outbox", "user_activity_agg", "enrolment", "context"):
        op.drop_table(t)
    op.drop_index("ix_scope_dirty_collection", "scope_dirty")
    op.drop_index("ix_scope_dirty_due", "scope_dirty")
    with op.batch_alter_table("scope_dirty") as b:
        b.drop_column("attempts")
        b.drop_column("claimed_by")
        b.drop_column("due_at")

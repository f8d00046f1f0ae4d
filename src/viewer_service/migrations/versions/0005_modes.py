"""Context modes: where a carried row came from, where a moved enrolment went, and the
instance settings the data was written under.

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # Appended in ContentView's field order: the batch statements rely on the column order.
    with op.batch_alter_table("user_content_consumption") as b:
        b.add_column(sa.Column("carried_from", Json))
    with op.batch_alter_table("enrolment") as b:
        b.add_column(sa.Column("moved_to", Json))
    with op.batch_alter_table("scope_dirty") as b:
        b.add_column(sa.Column("propagate", sa.Boolean, nullable=False, server_default=sa.true()))
    op.create_table(
        "instance_setting",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("instance_setting")
    with op.batch_alter_table("scope_dirty") as b:
        b.drop_column("propagate")
    with op.batch_alter_table("enrolment") as b:
        b.drop_column("moved_to")
    with op.batch_alter_table("user_content_consumption") as b:
        b.drop_column("carried_from")

"""The schema, in SQLAlchemy Core. Every primary key starts with user_id so that the
tables can be distributed by learner. Times are epoch milliseconds (BIGINT), the same on
SQLite and PostgreSQL."""

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Id = sa.String(256)

user_content_consumption = sa.Table(
    "user_content_consumption",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
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

# A scope whose collection progress must be recomputed. Written in the same transaction
# as the view end that makes it so; the aggregation worker consumes it.
scope_dirty = sa.Table(
    "scope_dirty",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),  # bumped on every mark
    sa.Column("marked_at", sa.BigInteger, nullable=False),
)

# Scopes whose cache entries may be stale because a cache update failed after commit.
cache_repair = sa.Table(
    "cache_repair",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# The collection catalog: reference data, not per learner (replicated, not distributed, when
# the learner tables are). The derived columns are what progress reads; document is as sent.
collection = sa.Table(
    "collection",
    metadata,
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("document", Json, nullable=False),
    sa.Column("leaf_ids", Json, nullable=False),
    sa.Column("required_leaf_ids", Json, nullable=False),
    sa.Column("units", Json, nullable=False),  # [[unit id, [required leaf ids]], ...] in hierarchy order
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

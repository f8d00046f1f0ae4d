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
    # Assessments (0004): the best attempt and the attempt count, columns in ContentView's order.
    sa.Column("best_score", sa.Float),
    sa.Column("best_max_score", sa.Float),
    sa.Column("best_attempt_id", Id),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # Context modes (0005): set on a row whose status was carried in (domain/carry.py provenance).
    sa.Column("carried_from", Json),
)

# One row per assessment attempt (Sunbird's assessment_aggregator). questions: the scored
# questions, [{id, score, max_score, type, title, description, resvalues, params, duration, assess_ts}].
assessment_aggregator = sa.Table(
    "assessment_aggregator",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("content_id", Id, primary_key=True),
    sa.Column("attempt_id", Id, primary_key=True),
    sa.Column("created_on", sa.BigInteger, nullable=False),
    sa.Column("updated_on", sa.BigInteger, nullable=False),
    sa.Column("last_attempted_on", sa.BigInteger, nullable=False),  # the attempt's assessmentTs
    sa.Column("total_score", sa.Float, nullable=False),
    sa.Column("total_max_score", sa.Float, nullable=False),
    sa.Column("grand_total", sa.String(64), nullable=False),
    sa.Column("questions", Json, nullable=False),
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
    # Work queue state: a worker claims a row by setting claimed_by and due_at = its lease end;
    # an unclaimed row is due at due_at (later than now while its collection is unknown).
    sa.Column("due_at", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # False when only marked because a scope it depends on changed (services/carry.py): its
    # recompute then marks no dependents of its own, so marks cannot ping-pong between scopes.
    sa.Column("propagate", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Index("ix_scope_dirty_due", "due_at"),
    sa.Index("ix_scope_dirty_collection", "collection_id"),
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

# A context (a batch, a program) and the collections it offers.
context = sa.Table(
    "context",
    metadata,
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("collection_ids", Json, nullable=False),
    sa.Column("start_date", sa.BigInteger),
    sa.Column("end_date", sa.BigInteger),
    sa.Column("document", Json, nullable=False),  # the request as sent (carry-forward rules live here)
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# A learner's enrolment in a collection within a context. The worker copies the scope's
# progress here (as Sunbird's user_enrolments has it); the per-activity detail is in the agg.
enrolment = sa.Table(
    "enrolment",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("enrolled_date", sa.BigInteger, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("issued_certificates", Json, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("progress", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("completed_on", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("moved_to", Json),  # move mode: {"contextId", "at"} once its progress moved away
    sa.Index("ix_enrolment_completed_on", "completed_on"),  # archive runs page by completion date
)

# Aggregates per scope and activity: the collection itself (activity_type "Course", activity_id
# = collection id) and each of its units ("Unit"). Recomputed whole from the raw rows.
user_activity_agg = sa.Table(
    "user_activity_agg",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("collection_id", Id, primary_key=True),
    sa.Column("context_id", Id, primary_key=True),
    sa.Column("activity_type", sa.String(32), primary_key=True),
    sa.Column("activity_id", Id, primary_key=True),
    sa.Column("aggregates", Json, nullable=False),  # completedCount, leafNodesCount, score:<cid>, ...
    sa.Column("content_status", Json, nullable=False),
    sa.Column("agg_last_updated", Json, nullable=False),
    sa.Column("progress", sa.SmallInteger, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("completed_on", sa.BigInteger),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_agg_collection", "collection_id"),
)

# Events waiting for the sink. event_id is deterministic per fact (e.g. one completion), so
# the same fact cannot be queued twice; rows go once the sink has them.
event_outbox = sa.Table(
    "event_outbox",
    metadata,
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
    sa.Index("ix_event_outbox_due", "due_at"),
)

# What an erase removed, and when: kept for the data-protection record.
erasure_log = sa.Table(
    "erasure_log",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("erased_at", sa.BigInteger, primary_key=True),
    sa.Column("erase_id", sa.String(64), primary_key=True),
    sa.Column("scope", Json),  # null: every enrolment; else {"collectionId", "contextId"}
    sa.Column("counts", Json, nullable=False),  # rows removed per table, files removed
    sa.Column("requested_by", Id),
)

# Generated summary downloads. The file is on disk under the download directory.
download_file = sa.Table(
    "download_file",
    metadata,
    sa.Column("user_id", Id, primary_key=True),
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("format", sa.String(8), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Index("ix_download_file_expires", "expires_at"),
)

# What the data was written under (name "context_mode"): the service refuses to start with a
# different mode until `viewer-service db migrate-mode` converts the data.
instance_setting = sa.Table(
    "instance_setting",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# `viewer-service import sunbird`: how far each file got. Written in the same transaction as the
# rows it counts, so a killed import resumes exactly where its last commit ended.
import_checkpoint = sa.Table(
    "import_checkpoint",
    metadata,
    sa.Column("source", sa.String(64), primary_key=True),  # the Sunbird table name
    sa.Column("file_id", sa.String(128), nullable=False),  # size and hash of the file's head
    sa.Column("byte_offset", sa.BigInteger, nullable=False),  # the next record starts here
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rejects_offset", sa.BigInteger, nullable=False),  # the rejects file's committed length
    sa.Column("imported", sa.BigInteger, nullable=False),
    sa.Column("merged", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Archiving (0008, docs/archive.md): what stays hot of a consumption row whose raw data (the row
# with its progress_details, and its assessment attempts) moved to the archive files. ContentView's
# columns without progress_details, plus where the raw data is: reads, writes and the worker merge
# these rows under the hot ones, so status, scores and certificates keep working.
archived_consumption = sa.Table(
    "archived_consumption",
    metadata,
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
    sa.Column("chunk_id", sa.String(64), nullable=False),  # the chunk whose file holds the row (at `version`)
    sa.Column("attempt_chunks", Json, nullable=False),  # the chunks whose files hold its attempts
    # The ids of those attempts (0011): a resubmitted archived attempt is the same attempt, not one
    # more. [] on rows archived before 0011 (then only best_attempt_id is known).
    sa.Column("attempt_ids", Json, nullable=False, server_default="[]"),
    sa.Column("archived_at", sa.BigInteger, nullable=False),
)

# The archive journal: one row per chunk of an archive run. 'pending' from before its files are
# written until the transaction that moves its rows out of the hot tables marks it 'done'; a
# pending chunk is completed or abandoned by the next run (services/archive.py).
archive_chunk = sa.Table(
    "archive_chunk",
    metadata,
    sa.Column("chunk_id", sa.String(64), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("dir", sa.String(1024), nullable=False),  # absolute
    sa.Column("files", Json, nullable=False),  # paths relative to dir
    sa.Column("counts", Json, nullable=False),
    sa.Column("dead_marks", sa.Integer, nullable=False),  # > 0: its files may hold rows no longer archived
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Reports (0009): a context's roster and stats read its enrolments by context, and its
# assessment stats read the scored rows only. Secondary indexes: the tables stay keyed
# (and distributable) by user.
REPORT_COLUMNS = ("status", "progress", "active", "enrolled_date", "completed_on")
sa.Index("ix_enrolment_context", enrolment.c.context_id, enrolment.c.collection_id, enrolment.c.user_id,
         postgresql_include=list(REPORT_COLUMNS))
sa.Index("ix_ucc_scored", user_content_consumption.c.context_id, user_content_consumption.c.collection_id,
         user_content_consumption.c.content_id,
         postgresql_where=user_content_consumption.c.attempts > 0,
         sqlite_where=user_content_consumption.c.attempts > 0,
         postgresql_include=["best_score", "best_max_score", "attempts"])
# The same for the kept rows of archived enrolments (0010): a context's assessment stats count them.
sa.Index("ix_arc_scored", archived_consumption.c.context_id, archived_consumption.c.collection_id,
         archived_consumption.c.content_id,
         postgresql_where=archived_consumption.c.attempts > 0,
         sqlite_where=archived_consumption.c.attempts > 0,
         postgresql_include=["best_score", "best_max_score", "attempts"])

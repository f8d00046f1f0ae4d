"""Sunbird's Cassandra rows (as cqlsh exports them) mapped onto ours: pure rules (docs/migration.md).

Each `*_row` function takes a record as {canonical column name: cqlsh text} and returns the
values in the column order of the matching `*_COLUMNS`, or raises Reject with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from . import cqlsh
from .assessments import grand_total
from .scope import ContextMode

TABLES = ("user_content_consumption", "user_enrolments", "assessment_aggregator", "user_activity_agg")


class Reject(ValueError):
    """A row that cannot be imported; the message is the reason written to the rejects file."""


# Sunbird's tables carry old and new names for the same column (lastaccesstime / last_access_time,
# courseid / collectionid ...). Names are compared without "_" and case; these map the rest.
_ALIASES = {
    "user_content_consumption": {"collectionid": "courseid", "contextid": "batchid"},
    "user_enrolments": {"collectionid": "courseid", "contextid": "batchid"},
    "assessment_aggregator": {"collectionid": "courseid", "contextid": "batchid", "questions": "question"},
    "user_activity_agg": {},
}
REQUIRED = {
    "user_content_consumption": ("userid", "courseid", "contentid"),
    "user_enrolments": ("userid", "courseid", "batchid"),
    "assessment_aggregator": ("userid", "courseid", "batchid", "contentid", "attemptid"),
    "user_activity_agg": ("userid", "activityid", "contextid"),
}


def canonical(table: str, name: str) -> str:
    n = name.strip().lower().replace("_", "")
    return _ALIASES[table].get(n, n)


class Header:
    """Where each canonical column is in a file's header. A column present under both its old
    and its new name is read from whichever is set (the first, when both are)."""

    def __init__(self, table: str, names: Sequence[str]):
        self.table = table
        self.names = list(names)
        self.width = len(names)
        self.index: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            self.index.setdefault(canonical(table, n), []).append(i)
        missing = [c for c in REQUIRED[table] if c not in self.index]
        if missing:
            raise Reject(f"the header has no {', '.join(missing)} column")

        self._canon = [canonical(table, n) for n in names]
        self._dups = [(name, idx) for name, idx in self.index.items() if len(idx) > 1]

    def picker(self, names: Sequence[str]) -> Callable[[list[str]], tuple]:
        """fields -> the values of the canonical columns `names`, as record() would give them
        ("" when absent), in one expression compiled for this header (only indexes go into it)."""
        parts = [" or ".join(f"f[{i}]" for i in self.index[n]) if n in self.index else '""' for n in names]
        return eval(f"lambda f: ({', '.join(parts)},)")  # noqa: S307 - text made of integers only

    def record(self, fields: list[str]) -> dict[str, str]:
        if len(fields) != self.width:
            raise Reject(f"{len(fields)} fields where the header has {self.width} (a cut or broken row)")
        out = dict(zip(self._canon, fields))
        for name, idx in self._dups:
            v = ""
            for i in idx:
                v = fields[i]
                if v:
                    break
            out[name] = v
        return out


def _need(r: dict, col: str) -> str:
    v = r.get(col, "")
    if not v:
        raise Reject(f"{col} is empty")
    if len(v) > 256:
        raise Reject(f"{col} is longer than 256 characters")
    return v


def _parse(fn, r: dict, col: str):
    try:
        return fn(r.get(col, ""))
    except cqlsh.BadValue as e:
        raise Reject(f"{col}: {e}") from None


def _json_value(v: str, col: str) -> str:
    try:
        parsed = orjson.loads(v)
    except orjson.JSONDecodeError:
        raise Reject(f"{col} is not JSON") from None
    if "\\u0000" in v or "\x00" in v:
        raise Reject(f"{col} holds the NUL character")
    return orjson.dumps(parsed).decode()


def _status(r: dict, default: int) -> int:
    s = _parse(cqlsh.integer, r, "status")
    if s is None:
        return default
    if not 0 <= s <= 2:
        raise Reject(f"status {s} is not 0, 1 or 2")
    return s


# -- user_content_consumption ------------------------------------------------------

UCC_COLUMNS = ("user_id", "collection_id", "context_id", "content_id", "status", "progress", "progress_details",
               "progress_details_ts", "time_spent", "view_count", "first_access_time", "last_access_time",
               "last_completed_time", "last_updated_time", "version")


# What a consumption row reads, in _consumption's argument order.
_UCC_READS = ("userid", "courseid", "batchid", "contentid", "status", "progress", "lastaccesstime", "lastupdatedtime",
              "datetime", "lastcompletedtime", "viewcount", "timespent", "progressdetails")


def consumption_row(r: dict, mode: ContextMode, now_ms: int) -> tuple:
    g = r.get
    return _consumption(*(g(c, "") for c in _UCC_READS), mode, now_ms)


def consumption_mapper(header: Header, mode: ContextMode, now_ms: int) -> Callable[[list[str]], tuple]:
    """consumption_row for records as read, without a dict per row (the import's hot path)."""
    pick, width = header.picker(_UCC_READS), header.width

    def row(fields: list[str]) -> tuple:
        if len(fields) != width:
            raise Reject(f"{len(fields)} fields where the header has {width} (a cut or broken row)")
        return _consumption(*pick(fields), mode, now_ms)
    return row


def _consumption(user, course, batch, content, status, progress, last_access, last_updated, dt, last_completed,
                 views, spent, details, mode, now_ms) -> tuple:
    for col, v in (("userid", user), ("courseid", course), ("contentid", content)):
        if not v or len(v) > 256:
            raise Reject(f"{col} is empty" if not v else f"{col} is longer than 256 characters")
    if batch and len(batch) > 256:
        raise Reject("batchid is longer than 256 characters")
    batch = batch or None
    if mode is ContextMode.STRICT:
        collection, context = course, batch or course
    else:
        s = mode.resolve(user, content, course, batch)
        collection, context = s.collection_id, s.context_id
    ts, integer = cqlsh.timestamp, cqlsh.integer
    col = "status"
    try:  # one try block names the failing column, no call per column
        status = integer(status)
        status = 1 if status is None else status
        col = "progress"
        progress = integer(progress) or 0
        col = "lastaccesstime"
        last_access = ts(last_access)
        col = "lastupdatedtime"
        last_updated = ts(last_updated)
        if last_updated is None:
            col = "datetime"
            last_updated = ts(dt) or last_access or now_ms
        col = "lastcompletedtime"
        last_completed = ts(last_completed) if status == 2 else None  # a stale time on an unfinished row means nothing
        col = "viewcount"
        views = integer(views) or 1
        col = "timespent"
        spent = cqlsh.number(spent) or 0.0
    except cqlsh.BadValue as e:
        raise Reject(f"{col}: {e}") from None
    if not 0 <= status <= 2:
        raise Reject(f"status {status} is not 0, 1 or 2")
    progress = 100 if status == 2 else min(max(progress, 0), 100)
    details = _json_value(details, "progressdetails") if details else None
    if status == 2 and last_completed is None:
        last_completed = last_updated
    access = last_access or last_updated
    return (user, collection, context, content, status, progress, details,
            access if details is not None else None, max(spent, 0.0), max(views, 1),
            access, access, last_completed, last_updated, now_ms * 1000)


# -- user_enrolments ---------------------------------------------------------------

ENROL_COLUMNS = ("user_id", "collection_id", "context_id", "enrolled_date", "active", "issued_certificates",
                 "status", "progress", "completed_on", "updated_at")
AGG_COLUMNS = ("user_id", "collection_id", "context_id", "activity_type", "activity_id", "aggregates",
               "content_status", "agg_last_updated", "progress", "status", "completed_on", "updated_at")


def _certificates(r: dict) -> list[dict]:
    out: dict[str, dict] = {}
    for col in ("issuedcertificates", "certificates"):
        value = _parse(cqlsh.literal, r, col)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
            raise Reject(f"{col} is not a list of maps")
        for c in value:
            cert = {str(k): v for k, v in c.items()}
            cid = cert.get("id") or cert.get("identifier") or cert.get("token")
            if cid:
                out.setdefault(str(cid), {**cert, "id": str(cid)})
    return list(out.values())


def enrolment_row(r: dict, now_ms: int) -> tuple[tuple, tuple]:
    """The enrolment, and the collection's aggregate row holding Sunbird's own figures: what a
    summary shows until the catalog knows the collection (then the worker recomputes it)."""
    user, course, batch = _need(r, "userid"), _need(r, "courseid"), _need(r, "batchid")
    status = _status(r, 0)
    completed_count = max(_parse(cqlsh.integer, r, "progress") or 0, 0)  # Sunbird: completed leaves
    percent = _parse(cqlsh.integer, r, "completionpercentage")
    progress = 100 if status == 2 else min(max(percent or 0, 0), 100)
    completed_on = _parse(cqlsh.timestamp, r, "completedon") if status == 2 else None
    if status == 2 and completed_on is None:
        completed_on = _parse(cqlsh.timestamp, r, "datetime")
    enrolled = _parse(cqlsh.timestamp, r, "enrolleddate") or _parse(cqlsh.timestamp, r, "datetime") or now_ms
    active = _parse(cqlsh.boolean, r, "active")
    statuses = _parse(cqlsh.literal, r, "contentstatus") or {}
    if not isinstance(statuses, dict) or not all(isinstance(v, int) for v in statuses.values()):
        raise Reject("contentstatus is not a map of integers")
    statuses = {str(k): min(max(v, 0), 2) for k, v in statuses.items()}
    certs = orjson.dumps(_certificates(r)).decode()
    enrolment = (user, course, batch, enrolled, True if active is None else active, certs, status, progress,
                 completed_on, now_ms)
    agg = (user, course, batch, "Course", course, orjson.dumps({"completedCount": completed_count}).decode(),
           orjson.dumps(statuses).decode(), "{}", progress, status, completed_on, now_ms)
    return enrolment, agg


# -- assessment_aggregator ---------------------------------------------------------

ASSESS_COLUMNS = ("user_id", "collection_id", "context_id", "content_id", "attempt_id", "created_on",
                  "updated_on", "last_attempted_on", "total_score", "total_max_score", "grand_total", "questions")


def _question(q: Any, i: int) -> dict:
    if not isinstance(q, dict):
        raise Reject(f"question[{i}] is not a user-defined type value")

    def num(name):
        v = q.get(name)
        if v is None:
            return 0.0
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise Reject(f"question[{i}].{name} is not a number")
        return float(v)

    ts = q.get("assess_ts")
    try:
        ts = cqlsh.timestamp(ts) if isinstance(ts, str) else ts
    except cqlsh.BadValue as e:
        raise Reject(f"question[{i}].assess_ts: {e}") from None
    return {"id": None if q.get("id") is None else str(q["id"]), "score": num("score"),
            "max_score": num("max_score"), "type": q.get("type"), "title": q.get("title"),
            "description": q.get("description"), "resvalues": q.get("resvalues") or [],
            "params": q.get("params") or [], "duration": num("duration"), "assess_ts": ts}


def assessment_row(r: dict, mode: ContextMode, now_ms: int) -> tuple:
    user, course, batch = _need(r, "userid"), _need(r, "courseid"), _need(r, "batchid")
    content, attempt = _need(r, "contentid"), _need(r, "attemptid")
    s = mode.resolve(user, content, course, batch)
    questions = _parse(cqlsh.literal, r, "question") or []
    if not isinstance(questions, list):
        raise Reject("question is not a list")
    questions = [_question(q, i) for i, q in enumerate(questions)]
    total = _parse(cqlsh.number, r, "totalscore")
    total_max = _parse(cqlsh.number, r, "totalmaxscore")
    if total is None:
        total = sum(q["score"] for q in questions)
    if total_max is None:
        total_max = sum(q["max_score"] for q in questions)
    last = _parse(cqlsh.timestamp, r, "lastattemptedon") or _parse(cqlsh.timestamp, r, "updatedon")
    if last is None:
        raise Reject("last_attempted_on is empty")
    created = _parse(cqlsh.timestamp, r, "createdon") or last
    updated = _parse(cqlsh.timestamp, r, "updatedon") or last
    gt = r.get("grandtotal") or grand_total(total, total_max)
    return (s.user_id, s.collection_id, s.context_id, content, attempt, created, updated, last, total, total_max,
            gt[:64], orjson.dumps(questions).decode())


# -- user_activity_agg -------------------------------------------------------------

def activity_agg_row(r: dict) -> tuple[str, str, str, dict]:
    """(user, collection, context, Sunbird's aggregate figures) of a collection-level row.
    Sunbird stores units with activity_type 'Course' too: the caller keeps only rows whose
    (user, activity, batch) is an enrolment."""
    user, activity, context = _need(r, "userid"), _need(r, "activityid"), _need(r, "contextid")
    kind = r.get("activitytype") or "Course"
    if kind != "Course":
        raise Reject(f"activity_type {kind!r} is not a collection's")
    batch = context[3:] if context.startswith("cb:") else context
    figures: dict[str, float] = {}
    for col in ("agg", "aggregates"):
        m = _parse(cqlsh.literal, r, col)
        if m is None:
            continue
        if not isinstance(m, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                              for v in m.values()):
            raise Reject(f"{col} is not a map of numbers")
        figures.update({str(k): v for k, v in m.items()})
    return user, activity, batch, figures


# -- merges: the same monotonic rules as live writes ---------------------------------

def _lo(a, b):
    return b if a is None else a if b is None else min(a, b)


def _hi(a, b):
    return b if a is None else a if b is None else max(a, b)


def merge_consumption(a: tuple, b: tuple) -> tuple:
    """Two rows of one key (a context mode can fold several Sunbird rows onto one of ours)."""
    newer = b[6] is not None and (a[7] is None or (b[7] is not None and b[7] > a[7]))
    return (*a[:4], max(a[4], b[4]), max(a[5], b[5]), b[6] if newer else a[6], b[7] if newer else a[7],
            max(a[8], b[8]), max(a[9], b[9]), _lo(a[10], b[10]), _hi(a[11], b[11]), _lo(a[12], b[12]),
            _hi(a[13], b[13]), max(a[14], b[14]))


def _certs_union(old: list, new: list) -> list:
    ids = {c.get("id") for c in old}
    return list(old) + [c for c in new if c.get("id") not in ids]


def merge_enrolment(old: tuple, new: tuple, now_ms: int) -> tuple | None:
    """An imported enrolment onto a stored one (ENROL_COLUMNS, certificates decoded); None when
    nothing changes. The stored `active` stays: the service's own state is the newer."""
    merged = (*old[:3], min(old[3], new[3]), old[4], _certs_union(old[5], new[5]), max(old[6], new[6]),
              max(old[7], new[7]), old[8] if old[8] is not None else new[8])
    return None if merged == tuple(old[:9]) else (*merged, now_ms)


def merge_agg(old: tuple, new: tuple, now_ms: int) -> tuple | None:
    """Sunbird's figures onto a stored collection aggregate (AGG_COLUMNS, maps decoded)."""
    aggregates = {**new[5], **old[5]}
    if "completedCount" in new[5]:
        aggregates["completedCount"] = max(new[5]["completedCount"], old[5].get("completedCount", 0))
    statuses = dict(old[6])
    for k, v in new[6].items():
        statuses[k] = max(v, statuses.get(k, 0))
    merged = (*old[:5], aggregates, statuses, old[7], max(old[8], new[8]), max(old[9], new[9]),
              old[10] if old[10] is not None else new[10])
    return None if merged == tuple(old[:11]) else (*merged, now_ms)

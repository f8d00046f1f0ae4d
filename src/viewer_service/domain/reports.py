"""Course-wide reports: the pure parts (filters, cursors, histogram buckets, days, names).
The rules are in docs/reports.md."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import orjson

from ..errors import InvalidReportValue

DAY_MS = 86_400_000
MAX_OFFSET_MINUTES = 14 * 60
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z  # UTC-14:00 .. UTC+14:00, every zone in use
# The progress histogram: 0, 1-10, 11-20, ..., 81-90, 91-99, 100.
BUCKETS = ("0", *(f"{lo}-{lo + 9}" for lo in range(1, 91, 10)), "91-99", "100")
STATUSES = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class RosterFilter:
    collection_id: str | None = None
    status: int | None = None
    completed_from: int | None = None  # epoch ms, inclusive
    completed_to: int | None = None  # epoch ms, exclusive
    active: bool | None = None
    search: str | None = None  # userId prefix


def bucket(progress: int) -> str:
    if progress <= 0:
        return "0"
    if progress >= 100:
        return "100"
    if progress >= 91:
        return "91-99"
    lo = (progress - 1) // 10 * 10 + 1
    return f"{lo}-{lo + 9}"


def histogram(counts: dict[int, int]) -> dict[str, int]:
    """Learners per progress bucket, every bucket present (a chart needs the empty ones too)."""
    out = dict.fromkeys(BUCKETS, 0)
    for progress, n in counts.items():
        out[bucket(progress)] += n
    return out


def encode_cursor(collection_id: str, user_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([collection_id, user_id])).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[str, str] | None:
    """The (collectionId, userId) a page starts after: a key, not an offset, so that enrolments
    written meanwhile neither repeat nor skip a row of the pages still to come."""
    if not cursor:
        return None
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        value = None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise InvalidReportValue("cursor is not one this service gave out", "cursor")
    return value[0], value[1]


def parse_time(value: str | None, field: str, *, end: bool = False) -> int | None:
    """Epoch milliseconds, or an ISO 8601 date or date-time (a date alone is UTC midnight; as an
    end it means the whole day, so the next midnight)."""
    if value is None or value == "":
        return None
    v = value.strip()
    if v.lstrip("-").isdigit():
        ms = int(v)
        if not 0 <= ms <= MAX_MS:
            raise InvalidReportValue("epoch milliseconds must be between 0 and the year 9999", field)
        return ms
    try:
        if len(v) == 10:
            d = datetime.combine(date.fromisoformat(v), datetime.min.time(), UTC)
            return int((d + (timedelta(days=1) if end else timedelta())).timestamp() * 1000)
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidReportValue("expected epoch milliseconds or an ISO 8601 date or date-time", field) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def day_of(ms: int, offset_minutes: int) -> int:
    """The day number (days since 1970-01-01) of an instant, in a zone offset from UTC."""
    return (ms + offset_minutes * 60_000) // DAY_MS


def day_label(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def per_day(counts: dict[int, int]) -> list[dict]:
    """Completions per day, oldest first, days without a completion included between the first
    and the last (a time axis without gaps)."""
    if not counts:
        return []
    first, last = min(counts), max(counts)
    return [{"date": day_label(d), "count": counts.get(d, 0)} for d in range(first, last + 1)]


def node_names(document: dict | None) -> dict[str, str]:
    """identifier -> name of every node of a collection hierarchy that has both."""
    names: dict[str, str] = {}
    stack = [document] if isinstance(document, dict) else []
    while stack:
        node = stack.pop()
        ident, name = node.get("identifier"), node.get("name")
        if isinstance(ident, str) and isinstance(name, str):
            names.setdefault(ident, name)
        children = node.get("children")
        if isinstance(children, list):
            stack.extend(c for c in children if isinstance(c, dict))
    return names


def weighted_median(pairs: list[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many times)."""
    pairs = sorted(p for p in pairs if p[1] > 0)
    n = sum(w for _, w in pairs)
    if not n:
        return None
    lo, hi = (n - 1) // 2, n // 2  # 0-based ranks of the middle value(s)
    out, seen = [], 0
    for value, w in pairs:
        for rank in (lo, hi):
            if seen <= rank < seen + w:
                out.append(value)
        seen += w
        if len(out) == 2:
            break
    return sum(out) / 2


def percent(score: float, max_score: float | None) -> float:
    return score * 100.0 / max_score if max_score else 0.0


def assessment_summary(rows, pass_percent: float) -> list[dict]:
    """Per scored content, from (collection, content, best score, max score, learners, attempts)
    rows: learners, attempts, mean and median best score and percent, pass count."""
    by: dict[tuple[str, str], list] = {}
    for r in rows:
        by.setdefault((r[0], r[1]), []).append(r)
    out = []
    for (collection_id, content_id), group in sorted(by.items()):
        learners = sum(r[4] for r in group)
        scores = [(float(r[2]), r[4]) for r in group]
        pcts = [(percent(float(r[2]), r[3]), r[4]) for r in group]
        out.append({
            "collectionId": collection_id, "contentId": content_id, "learners": learners,
            "attempts": int(sum(r[5] or 0 for r in group)),
            "meanScore": sum(v * w for v, w in scores) / learners, "medianScore": weighted_median(scores),
            "meanPercent": sum(v * w for v, w in pcts) / learners, "medianPercent": weighted_median(pcts),
            "maxScore": max((r[3] for r in group if r[3] is not None), default=None),
            "passCount": sum(w for v, w in pcts if v >= pass_percent),
        })
    return out

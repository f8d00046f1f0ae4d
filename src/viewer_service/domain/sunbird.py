"""lms-service compatibility rules (docs/sunbird.md): its date format, its error codes, and how
its enrolment list presents progress. Pure functions over plain data."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone

from ..errors import SunbirdError
from .views import COMPLETED, IN_PROGRESS, NOT_STARTED, ViewEntry

# lms-service's "yyyy-MM-dd HH:mm:ss:SSSZ", e.g. "2020-11-23 12:58:35:179+0000".
_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2}):(\d{3})([+-])(\d{2}):?(\d{2})")


def missing(name: str, field: str) -> SunbirdError:
    return SunbirdError("MANDATORY_PARAMETER_MISSING", f"Mandatory parameter {name} is missing.", field)


def data_type(name: str, kind: str, field: str) -> SunbirdError:
    return SunbirdError("DATA_TYPE_ERROR", f"Data type of {name} should be {kind}.", field)


def invalid(value: object, name: str, field: str) -> SunbirdError:
    return SunbirdError("INVALID_PARAMETER_VALUE", f"Invalid value {value} for parameter {name}.", field)


def parse_date(value: object, field: str) -> int | None:
    """Epoch ms from lms-service's date format; None for an absent value."""
    if value is None or value == "":
        return None
    m = _DATE.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        raise SunbirdError("DATE_FORMAT_ERRROR", "Date format error.", field)  # sic: lms-service's spelling
    y, mo, d, h, mi, s, ms, sign, oh, om = m.groups()
    offset = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
    try:
        t = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(ms) * 1000, timezone(offset))
    except ValueError:
        raise SunbirdError("DATE_FORMAT_ERRROR", "Date format error.", field) from None
    return int(t.timestamp() * 1000)


def format_date(ms: int | None) -> str | None:
    """lms-service's date format, in UTC."""
    if ms is None:
        return None
    sec, milli = divmod(ms, 1000)
    return time.strftime("%Y-%m-%d %H:%M:%S:", time.gmtime(sec)) + f"{milli:03d}+0000"


def format_day(ms: int | None) -> str | None:
    """A batch's dates as lms-service shows them: "yyyy-MM-dd" (UTC)."""
    return None if ms is None else time.strftime("%Y-%m-%d", time.gmtime(ms // 1000))


def batch_problem(context, course_id: str, now_ms: int) -> str | None:
    """Why content state cannot be written under a batch (its context row, or None when
    unknown): lms-service's result keys. A batch that does not offer the course is unknown."""
    if context is None or course_id not in context.collection_ids:
        return "BATCH_NOT_EXISTS"
    if (context.start_date is not None and context.start_date > now_ms) or \
            (context.end_date is not None and context.end_date < now_ms):
        return "NOT_A_ON_GOING_BATCH"
    return None


def last_read(entries: Mapping[str, ViewEntry]) -> tuple[str | None, int | None, int | None]:
    """(lastReadContentId, lastReadContentStatus, lastContentAccessTime): the content accessed last."""
    best = None
    for cid, e in entries.items():
        t = e.last_access_time
        if t is not None and (best is None or t > best[2] or (t == best[2] and cid > best[0])):
            best = (cid, e.status, t)
    return best or (None, None, None)


def completed_count(required: Iterable[str], content_status: dict[str, int]) -> int:
    """lms-service's enrolment `progress`: how many (required) leaves are completed."""
    return sum(1 for c in required if content_status.get(c) == COMPLETED)


def list_status(status: int, percentage: int) -> tuple[int, int]:
    """(status, completionPercentage) as the list shows them. A completed enrolment stays
    completed at 100 % even after its course gains contents (Sunbird flips it back)."""
    if status == COMPLETED:
        return COMPLETED, 100
    return (IN_PROGRESS if status == IN_PROGRESS or percentage > 0 else NOT_STARTED), percentage


def list_order(courses: list[dict]) -> list[dict]:
    """lms-service's order: newest enrolment first, then (stable) the last accessed first, never
    accessed last."""
    by_date = sorted(courses, key=lambda c: -(c["_enrolled"] or 0))
    return sorted(by_date, key=lambda c: (c["lastContentAccessTime"] is None, -(c["lastContentAccessTime"] or 0)))

"""Assessment rules: parse ASSESS events, score an attempt, pick the best attempt (docs/assessments.md).

Pure functions over plain data. Times are epoch milliseconds."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import orjson

from ..errors import InvalidEvent, InvalidScore
from .events import fact_uuid


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    score: float
    max_score: float
    type: Any
    title: Any
    description: Any
    resvalues: Any
    params: Any
    duration: float
    assess_ts: int

    def as_json(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class ScoredAttempt:
    attempt_id: str
    assessment_ts: int
    total_score: float
    total_max_score: float
    grand_total: str
    questions: tuple[Question, ...]


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """What the best-attempt rule and the replacement rule need of a stored attempt."""
    attempt_id: str
    last_attempted_on: int
    total_score: float
    total_max_score: float


# -- parsing --------------------------------------------------------------------

MAX_NUMBER = 1e9  # per question: far above any real score or duration, and sums stay exact enough


def _finite(v: Any) -> bool:
    # bool is an int to Python, never a number to a client; a huge int must not reach float().
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


def _number(v: Any, field: str, what: str, default: float | None = None, err: type = InvalidScore) -> float:
    if v is None and default is not None:
        return default
    if not _finite(v):
        raise err(f"{what} must be a finite number", field)
    if v < 0:
        raise err(f"{what} must not be negative", field)
    if v > MAX_NUMBER:
        raise err(f"{what} must not exceed {MAX_NUMBER:g}", field)
    return float(v)


def _ts(v: Any, field: str, min_ts: int, max_ts: int) -> int:
    if not _finite(v):
        raise InvalidEvent("the event time must be epoch milliseconds", field)
    if v > max_ts:
        raise InvalidEvent("the event time is in the future beyond the allowed clock skew", field)
    if v < min_ts:
        raise InvalidEvent("the event time must be epoch milliseconds after 2000-01-01", field)
    return int(v)


def _qid(v: Any, field: str) -> str:
    if not isinstance(v, str) or not 1 <= len(v) <= 256 or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise InvalidEvent("the question id must be a string of 1 to 256 characters", field)
    return v


def parse_event(raw: Any, field: str, min_ts: int, max_ts: int) -> Question:
    """One answered question from a V3 ASSESS event `{eid, ets, edata:{score, duration, resvalues,
    item:{id, maxscore, type, title, desc, params}}}` or the flat form `{questionId|identifier,
    score, maxScore, duration, timestamp, questionType, title, description, resvalues, params}`."""
    if not isinstance(raw, dict):
        raise InvalidEvent("an assessment event must be an object", field)
    if "edata" in raw:
        if raw.get("eid", "ASSESS") != "ASSESS":
            raise InvalidEvent('only ASSESS events are scored', f"{field}.eid")
        edata = raw["edata"]
        if not isinstance(edata, dict) or not isinstance(edata.get("item"), dict):
            raise InvalidEvent("edata.item must be an object", f"{field}.edata.item")
        item = edata["item"]
        at, it = f"{field}.edata", f"{field}.edata.item"
        qid = _qid(item.get("id"), f"{it}.id")
        ts = _ts(raw.get("ets"), f"{field}.ets", min_ts, max_ts)
        score_v, score_f, max_v, max_f = edata.get("score"), f"{at}.score", item.get("maxscore"), f"{it}.maxscore"
        dur_v, dur_f = edata.get("duration"), f"{at}.duration"
        kind, title, desc = item.get("type"), item.get("title"), item.get("desc")
        resvalues, params = edata.get("resvalues"), item.get("params")
    else:
        qid_key = "questionId" if "questionId" in raw else "identifier"
        qid = _qid(raw.get(qid_key), f"{field}.{qid_key}")
        ts_key = "timestamp" if "timestamp" in raw else "ets"
        ts = _ts(raw.get(ts_key), f"{field}.{ts_key}", min_ts, max_ts)
        score_v, score_f, max_v, max_f = raw.get("score"), f"{field}.score", raw.get("maxScore"), f"{field}.maxScore"
        dur_v, dur_f = raw.get("duration"), f"{field}.duration"
        kind, title, desc = raw.get("questionType"), raw.get("title"), raw.get("description")
        resvalues, params = raw.get("resvalues"), raw.get("params")
    # A missing score or max score is 0, as in Sunbird; a missing score is not a reason to lose the attempt.
    score = _number(score_v, score_f, "score", 0.0)
    max_score = _number(max_v, max_f, "the max score", 0.0)
    if score > max_score:
        raise InvalidScore(f"score {score:g} is above the max score {max_score:g}", score_f)
    duration = _number(dur_v, dur_f, "duration", 0.0, InvalidEvent)
    _storable((kind, title, desc, resvalues, params), field)
    return Question(qid, score, max_score, kind, title, desc, resvalues, params, duration, ts)


def _storable(values: Any, field: str) -> None:
    """The free-form parts are kept as sent: they must fit a JSON column on both databases."""
    try:
        raw = orjson.dumps(values)
    except TypeError:
        raise InvalidEvent("the event holds a number that does not fit in 64 bits", field) from None
    if b"\\u0000" in raw:  # PostgreSQL's JSONB cannot store it
        raise InvalidEvent("the event may not contain the NUL character", field)


def cdata_attempt_id(raw_events: Sequence[Any], field: str) -> str | None:
    """The attempt id the player put in the events' context.cdata (type "AttemptId"), if any."""
    found: str | None = None
    for i, raw in enumerate(raw_events):
        cdata = raw.get("context", {}).get("cdata") if isinstance(raw, dict) and isinstance(raw.get("context"), dict) else None
        for c in cdata if isinstance(cdata, list) else ():
            if isinstance(c, dict) and c.get("type") == "AttemptId" and isinstance(c.get("id"), str) and c["id"]:
                if found is not None and c["id"] != found:
                    raise InvalidEvent("the events name different attempts (cdata AttemptId); submit them separately",
                                       f"{field}.{i}.context.cdata")
                found = c["id"]
    return found


def derived_attempt_id(user_id: str, collection_id: str, context_id: str, content_id: str,
                       questions: Iterable[Question]) -> str:
    """An attempt id from the attempt itself, so that a retried request is the same attempt."""
    identities = sorted({orjson.dumps([q.id, q.assess_ts, q.score, q.max_score]) for q in questions})
    digest = hashlib.sha256(b"\n".join(identities)).hexdigest()
    return fact_uuid(user_id, collection_id, context_id, content_id, "attempt", digest)


# -- scoring --------------------------------------------------------------------

def unique_questions(questions: Iterable[Question]) -> list[Question]:
    """The latest answer (by ets) per question id; on equal ets the later one in the list wins."""
    latest: dict[str, Question] = {}
    for q in questions:
        cur = latest.get(q.id)
        if cur is None or q.assess_ts >= cur.assess_ts:
            latest[q.id] = q
    return list(latest.values())


def format_total(x: float) -> str:
    """Java's DecimalFormat("0.0#"): one or two decimals, HALF_EVEN on the exact binary value."""
    d = Decimal(x).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    s = f"{d:f}"
    return s[:-1] if s.endswith("0") else s


def grand_total(score: float, max_score: float) -> str:
    return f"{format_total(score)}/{format_total(max_score)}"


def score_attempt(attempt_id: str, assessment_ts: int, questions: Iterable[Question]) -> ScoredAttempt:
    unique = unique_questions(questions)
    total, total_max = math.fsum(q.score for q in unique), math.fsum(q.max_score for q in unique)
    return ScoredAttempt(attempt_id, assessment_ts, total, total_max, grand_total(total, total_max), tuple(unique))


def replaces(stored: StoredAttempt | None, assessment_ts: int) -> bool:
    """A resubmitted attempt replaces the stored one only if strictly newer (Sunbird's data-pipeline rule)."""
    return stored is None or assessment_ts > stored.last_attempted_on


def _rank(a: StoredAttempt) -> tuple:
    fraction = a.total_score / a.total_max_score if a.total_max_score > 0 else 0.0
    return (fraction, a.total_score, a.last_attempted_on, a.attempt_id)


def best_attempt(attempts: Iterable[StoredAttempt]) -> StoredAttempt | None:
    """Highest score as a fraction of its max; ties: higher raw score, then the newest."""
    return max(attempts, key=_rank, default=None)


def score_aggregates(rows: Iterable) -> dict[str, float]:
    """Sunbird's aggregate keys for the scored contents of a scope's rows (ContentView)."""
    out: dict[str, float] = {}
    for v in rows:
        if v.attempts and v.best_score is not None:
            cid = v.key.content_id
            out[f"score:{cid}"] = v.best_score
            out[f"max_score:{cid}"] = v.best_max_score
            out[f"attempts_count:{cid}"] = v.attempts
    return out

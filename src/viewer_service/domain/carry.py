"""Carry-forward on top of strict mode: which completions made elsewhere count in an enrolment,
and how a carried or moved row is built. Pure rules; docs/modes.md states them with examples."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from .scope import Scope
from .views import COMPLETED, ContentView, RowKey, next_version

CARRY_MODES = ("none", "copy-content", "copy-collection", "move")
COPY_MODES = ("copy-content", "copy-collection")
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class CarryRule:
    mode: str = "none"
    window_days: int | None = None  # completed at most this many days before the enrolment
    within_context_dates: bool = False  # completed between the context's start and end dates

    def as_json(self) -> dict:
        return {"mode": self.mode, "windowDays": self.window_days, "withinContextDates": self.within_context_dates}


def rule_for(default: CarryRule, context_document: dict | None) -> CarryRule:
    """A context's own `carryForward` replaces the instance default whole."""
    cf = (context_document or {}).get("carryForward")
    if not isinstance(cf, dict):
        return default
    return CarryRule(cf.get("mode", "none"), cf.get("windowDays"), bool(cf.get("withinContextDates", False)))


@dataclass(frozen=True, slots=True)
class Target:
    """The enrolment progress is carried into."""
    scope: Scope
    enrolled_date: int
    start: int | None  # the context's dates
    end: int | None
    rule: CarryRule


def qualifies(t: Target, completed_at: int | None) -> bool:
    """Whether a completion at `completed_at` may count in `t`. The configured rules are
    alternatives (the seed: "in the last 3 months or within the program duration"); with none
    configured every completion counts. A context never takes what was completed after it ended."""
    if completed_at is None or (t.end is not None and completed_at > t.end):
        return False
    checks = []
    if t.rule.window_days is not None:
        checks.append(completed_at >= t.enrolled_date - t.rule.window_days * DAY_MS)
    if t.rule.within_context_dates:
        checks.append((t.start is None or completed_at >= t.start) and (t.end is None or completed_at <= t.end))
    return any(checks) if checks else True


def is_earned(v: ContentView) -> bool:
    """A row whose status was earned where it is (or moved there with its only copy): a source.
    Copies are never sources, so a copy of a copy cannot hide where progress was made."""
    return v.carried_from is None or v.carried_from.get("mode") == "move"


def is_source(t: "Target", v: ContentView) -> bool:
    """copy-content: a completion anywhere else. copy-collection: a completion inside another
    collection; one made on its own counts only once the learner is enrolled (work done while
    enrolled is work for the course; earlier standalone views are not)."""
    k = v.key
    if v.status != COMPLETED or not is_earned(v) or k.scope == t.scope:
        return False
    if t.rule.mode == "copy-collection":
        return k.content_id != k.collection_id or (v.last_completed_time or 0) >= t.enrolled_date
    return t.rule.mode == "copy-content"


def _fraction(v: ContentView) -> float:
    return v.best_score / v.best_max_score if v.best_score is not None and v.best_max_score else -1.0


def pick_sources(t: Target, candidates: list[ContentView]) -> dict[str, ContentView]:
    """Per content, the source carried in: the best score, then the earliest completion."""
    best: dict[str, ContentView] = {}
    for v in candidates:
        if not is_source(t, v) or not qualifies(t, v.last_completed_time):
            continue
        cur = best.get(v.key.content_id)
        rank = (_fraction(v), -(v.last_completed_time or 0), _order(v))
        if cur is None or rank > (_fraction(cur), -(cur.last_completed_time or 0), _order(cur)):
            best[v.key.content_id] = v
    return best


def _order(v: ContentView) -> tuple:
    return (v.key.collection_id, v.key.context_id)  # a fixed tie-break: the same input, the same pick


def provenance(mode: str, trigger: str, source: ContentView, rule: CarryRule, now_ms: int) -> dict[str, Any]:
    k = source.key
    return {"mode": mode, "trigger": trigger, "from": {"collectionId": k.collection_id, "contextId": k.context_id},
            "at": now_ms, "completedOn": source.last_completed_time, "attemptId": source.best_attempt_id,
            "rule": rule.as_json()}


def carried_row(key: RowKey, existing: ContentView | None, source: ContentView, prov: dict, now_ms: int) -> ContentView | None:
    """The target row once `source`'s completion is copied in; None when the target already has
    its own completion (earned there, or carried before)."""
    if existing is not None and existing.status == COMPLETED:
        return None
    now_us = now_ms * 1000
    carried = dict(status=COMPLETED, progress=100, last_completed_time=source.last_completed_time,
                   best_score=source.best_score, best_max_score=source.best_max_score,
                   best_attempt_id=source.best_attempt_id, carried_from=prov, last_updated_time=now_ms)
    if existing is None:
        return ContentView(key, progress_details=source.progress_details,
                           progress_details_ts=source.progress_details_ts,
                           first_access_time=source.first_access_time, last_access_time=source.last_access_time,
                           attempts=1 if source.best_attempt_id else 0, version=next_version(0, now_us), **carried)
    if existing.attempts and _fraction(existing) > _fraction(source):
        # Attempts made here score better than the source's: keep them.
        for f in ("best_score", "best_max_score", "best_attempt_id"):
            carried.pop(f)
    else:
        carried["attempts"] = existing.attempts + (1 if source.best_attempt_id else 0)
    return replace(existing, version=next_version(existing.version, now_us), **carried)


def _lo(a, b):
    return b if a is None else a if b is None else min(a, b)


def _hi(a, b):
    return b if a is None else a if b is None else max(a, b)


def merge_rows(into: ContentView | None, other: ContentView, now_ms: int, carried_from: dict | None = None) -> ContentView:
    """One row from two records of the same content (a move, a mode migration): the furthest
    status and progress, the first completion, summed time and views, the best score. The result
    is `carried_from` when `other`'s status is the one that counts."""
    moved = replace(other, key=into.key) if into is not None else other
    if into is None:
        return replace(moved, carried_from=carried_from or other.carried_from,
                       version=next_version(other.version, now_ms * 1000))
    a, b = into, moved
    details_from = b if (b.progress_details_ts or -1) > (a.progress_details_ts or -1) else a
    score_from = b if _fraction(b) > _fraction(a) else a
    done = [v for v in (a, b) if v.status == COMPLETED]
    origin = a.carried_from
    if b.status > a.status or (a.status == b.status == COMPLETED and
                               (b.last_completed_time or 0) < (a.last_completed_time or 0)):
        origin = carried_from or b.carried_from
    return replace(
        a, status=max(a.status, b.status), progress=max(a.progress, b.progress),
        progress_details=details_from.progress_details, progress_details_ts=details_from.progress_details_ts,
        time_spent=a.time_spent + b.time_spent, view_count=a.view_count + b.view_count,
        first_access_time=_lo(a.first_access_time, b.first_access_time),
        last_access_time=_hi(a.last_access_time, b.last_access_time),
        last_completed_time=min((v.last_completed_time for v in done if v.last_completed_time is not None),
                                default=None),
        last_updated_time=now_ms, version=next_version(max(a.version, b.version), now_ms * 1000),
        best_score=score_from.best_score, best_max_score=score_from.best_max_score,
        best_attempt_id=score_from.best_attempt_id, attempts=a.attempts + b.attempts, carried_from=origin)


def not_before(completed_on: int | None, enrolled_date: int | None, carried: bool) -> int | None:
    """Progress carried in completes an enrolment at its enrolment date at the earliest: it
    cannot be completed before it began. (Progress earned in the scope keeps its own time.)"""
    if not carried or completed_on is None or enrolled_date is None:
        return completed_on
    return max(completed_on, enrolled_date)

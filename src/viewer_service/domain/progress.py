"""Collection progress from a scope's raw rows: pure rules (docs/progress.md).

The worker and the summary read both call `compute`, so what the API shows at once and what
the worker stores agree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .collections import Collection
from .views import COMPLETED, IN_PROGRESS, NOT_STARTED


class Consumed(Protocol):
    """What progress needs of a content's row: a stored ContentView, or a read's ViewEntry."""
    status: int
    last_completed_time: int | None


@dataclass(frozen=True, slots=True)
class ActivityProgress:
    completed_count: int
    required_count: int
    progress: int  # 0-100, floor
    status: int  # 0 not started, 1 in progress, 2 completed
    completed_on: int | None  # client time of the view end that completed it


@dataclass(frozen=True, slots=True)
class ScopeProgress:
    content_status: dict[str, int]
    collection: ActivityProgress | None  # None while the catalog does not know the collection
    units: dict[str, ActivityProgress] = field(default_factory=dict)


def activity(required: tuple[str, ...], leaves: tuple[str, ...], rows: Mapping[str, Consumed],
             started: bool) -> ActivityProgress:
    done = [rows[c] for c in required if c in rows and rows[c].status == COMPLETED]
    if required:
        n = len(required)
        complete = len(done) == n
        progress = len(done) * 100 // n
        completed_on = max((v.last_completed_time or 0 for v in done), default=None) if complete else None
    else:
        # Nothing is required (all optional, or empty): complete once any leaf is completed.
        optional_done = [rows[c] for c in leaves if c in rows and rows[c].status == COMPLETED]
        complete = bool(optional_done)
        progress = 100 if complete else 0
        completed_on = min(v.last_completed_time or 0 for v in optional_done) if complete else None
    status = COMPLETED if complete else IN_PROGRESS if started else NOT_STARTED
    return ActivityProgress(len(done), len(required), progress, status, completed_on or None)


def compute(collection: Collection | None, by_id: Mapping[str, Consumed]) -> ScopeProgress:
    """Progress of a scope from its rows by content id."""
    status_map = {cid: v.status for cid, v in by_id.items()}
    if collection is None:
        return ScopeProgress(status_map, None)
    # Any row in the scope means the learner has started the collection.
    root = activity(collection.required_leaf_nodes, collection.leaf_nodes, by_id, bool(by_id))
    units = {u: activity(req, req, by_id, any(c in by_id for c in req)) for u, req in collection.units.items()}
    return ScopeProgress(status_map, root, units)


def merge_stored(new: ActivityProgress, stored_status: int | None, stored_completed_on: int | None) -> ActivityProgress:
    """Completion is sticky: once completed, the status and completedOn never move or clear,
    even if the collection later gains contents (the progress figure does follow the catalog)."""
    if stored_completed_on is not None or stored_status == COMPLETED:
        return ActivityProgress(new.completed_count, new.required_count, new.progress, COMPLETED,
                                stored_completed_on if stored_completed_on is not None else new.completed_on)
    return new

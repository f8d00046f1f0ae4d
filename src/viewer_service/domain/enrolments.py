"""What an enrolment and a context are, as the use cases pass them around (docs/progress.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .scope import Scope


@dataclass(frozen=True, slots=True)
class Enrolment:
    user_id: str
    collection_id: str
    context_id: str
    enrolled_date: int
    active: bool
    issued_certificates: list
    status: int
    progress: int
    completed_on: int | None
    updated_at: int
    moved_to: dict | None  # move mode: {"contextId", "collectionId", "at"} once its progress moved away

    @property
    def scope(self) -> Scope:
        return Scope(self.user_id, self.collection_id, self.context_id)


@dataclass(frozen=True, slots=True)
class Context:
    """A batch or program offering collections; `document` is the request as sent (carry-forward
    rules live there)."""
    context_id: str
    type: str
    collection_ids: list[str]
    start_date: int | None
    end_date: int | None
    document: dict[str, Any]
    updated_at: int

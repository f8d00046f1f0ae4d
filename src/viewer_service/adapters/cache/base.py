"""The scope cache: per learner scope, a map contentId -> read entry (domain/views.py ViewEntry).

Entries carry the row version; a lower version never replaces a higher one. A scope is
"full" once it was filled from the database; before that it may hold only entries that
writers put, and readers must not trust it. The empty field name marks a full scope
(content ids are never empty)."""

from __future__ import annotations

from typing import Protocol

from ...domain.scope import Scope
from ...domain.views import ViewEntry

FULL_MARK = ""


class ScopeCache(Protocol):
    kind: str
    degraded: bool  # set when an update failed; reads bypass the cache until repaired

    async def read(self, scope: Scope, content_ids: list[str] | None) -> dict[str, ViewEntry] | None:
        """Entries for `content_ids` (all if None), or None when the scope is not cached in full."""

    async def put(self, entries: list[tuple[Scope, str, int, ViewEntry]], full: Scope | None = None) -> bool:
        """Merge (scope, content id, version, entry) items; False when the cache could not be updated."""

    async def invalidate(self, scopes: list[Scope]) -> bool: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...

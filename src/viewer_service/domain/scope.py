"""Which (collection, context) a request reads and writes.

One function decides it for every API, so that context modes can extend it in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Scope:
    user_id: str
    collection_id: str
    context_id: str


def resolve_scope(
    user_id: str,
    content_id: str | None,
    collection_id: str | None = None,
    context_id: str | None = None,
    mode: str = "strict",
) -> Scope:
    """Strict mode (seed scenarios 1-3): collection defaults to the content, context to the collection."""
    if mode != "strict":
        raise ValueError(f"unknown context mode {mode!r}")
    collection = collection_id or content_id
    if collection is None:
        raise ValueError("a contentId or a collectionId is needed to resolve a scope")
    return Scope(user_id, collection, context_id or collection)

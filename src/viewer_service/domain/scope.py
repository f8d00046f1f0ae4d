"""Which (collection, context) a request reads and writes, by the instance's context mode
(docs/modes.md). One function decides it for every API."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("strict", "content", "collection")


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
    """strict: collection defaults to the content, context to the collection (seed scenarios 1-3).
    collection: the context is ignored; progress lives at (collection, collection).
    content: collection and context are ignored; progress lives at (content, content)."""
    if mode not in MODES:
        raise ValueError(f"unknown context mode {mode!r}")
    if mode == "content" and content_id is not None:
        return Scope(user_id, content_id, content_id)
    collection = collection_id or content_id
    if collection is None:
        raise ValueError("a contentId or a collectionId is needed to resolve a scope")
    if mode == "strict":
        return Scope(user_id, collection, context_id or collection)
    return Scope(user_id, collection, collection)


def storage_scope(enrolment: Scope, content_id: str, mode: str) -> Scope:
    """Where the progress of `content_id` counted by an enrolment (or summary) scope is stored."""
    return resolve_scope(enrolment.user_id, content_id, enrolment.collection_id, enrolment.context_id, mode)


"""Which (collection, context) a request reads and writes, by the instance's context mode
(docs/modes.md). One type decides it for every API."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Scope:
    user_id: str
    collection_id: str
    context_id: str


class ContextMode(StrEnum):
    """Where a write is stored (`resolve`) and which scopes a read consults (`read_scopes`).

    strict: collection defaults to the content, context to the collection (seed scenarios 1-3).
    collection: the context is ignored; progress lives at (collection, collection).
    content: collection and context are ignored; progress lives at (content, content)."""

    STRICT = "strict"
    CONTENT = "content"
    COLLECTION = "collection"

    def resolve(self, user_id: str, content_id: str | None, collection_id: str | None = None,
                context_id: str | None = None) -> Scope:
        if self is ContextMode.CONTENT and content_id is not None:
            return Scope(user_id, content_id, content_id)
        collection = collection_id or content_id
        if collection is None:
            raise ValueError("a contentId or a collectionId is needed to resolve a scope")
        if self is ContextMode.STRICT:
            return Scope(user_id, collection, context_id or collection)
        return Scope(user_id, collection, collection)

    def storage_scope(self, enrolment: Scope, content_id: str) -> Scope:
        """Where the progress of `content_id` counted by an enrolment (or summary) scope is stored."""
        return self.resolve(enrolment.user_id, content_id, enrolment.collection_id, enrolment.context_id)

    def read_scopes(self, enrolment: Scope, contents: list[str] | None) -> list[tuple[Scope, list[str] | None]]:
        """Where a read of `contents` (None: all) counted by an enrolment (or summary) scope looks:
        (scope, its contents or None for all). In content mode every content has its own scope, so
        all of them must be named (a collection's leaves)."""
        if self is ContextMode.CONTENT:
            return [(self.storage_scope(enrolment, cid), [cid]) for cid in contents or ()]
        return [(self.resolve(enrolment.user_id, None, enrolment.collection_id, enrolment.context_id), contents)]

    @property
    def per_content(self) -> bool:
        """Every content is its own scope: a read of several contents consults several scopes."""
        return self is ContextMode.CONTENT

    @property
    def shared_by_contexts(self) -> bool:
        """Strict keeps each context's progress apart; the others share one copy across contexts
        (so carry-forward, which moves progress between contexts, needs strict)."""
        return self is not ContextMode.STRICT


MODES = tuple(ContextMode)


def resolve_scope(user_id: str, content_id: str | None, collection_id: str | None = None,
                  context_id: str | None = None, mode: str = ContextMode.STRICT) -> Scope:
    """ContextMode(mode).resolve(...), for callers holding the mode's name."""
    return ContextMode(mode).resolve(user_id, content_id, collection_id, context_id)


def storage_scope(enrolment: Scope, content_id: str, mode: str) -> Scope:
    return ContextMode(mode).storage_scope(enrolment, content_id)

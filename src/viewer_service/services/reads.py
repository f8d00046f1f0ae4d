"""Reads of progress across scopes: one place turns what a request names into the scopes its
contents are stored in (domain/scope.py ContextMode) and gathers their live entries."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from ..domain.scope import ContextMode, Scope
from ..domain.views import ViewEntry
from ..errors import DomainError
from .catalog import Catalog
from .views import ViewService


@dataclass(slots=True)
class ContentsRead:
    """What view/read and assessment/read answer from."""
    scope: Scope
    multi: bool  # several contents named without a collection: each is its own scope (seed scenario 1)
    ids: list[str]  # the contents to answer for, in order
    entries: dict[str, ViewEntry]
    per_content: bool  # the contents live in one scope each (multi, or the content mode)
    mode: ContextMode
    context_id: str | None

    def result(self, contents: list) -> dict:
        """The read's answer around its `contents`."""
        return {"userId": self.scope.user_id, "collectionId": None if self.multi else self.scope.collection_id,
                "contextId": self.context_id if self.multi else self.scope.context_id, "contents": contents}

    def scope_of(self, content_id: str) -> Scope:
        if not self.per_content:
            return self.scope
        return self.mode.resolve(self.scope.user_id, content_id, None, self.context_id)


async def _gather(views: ViewService, plan: list[tuple[Scope, list[str] | None]]) -> dict[str, tuple[Scope, ViewEntry]]:
    found = await asyncio.gather(*(views.read(s, ids) for s, ids in plan))
    return {cid: (s, e) for (s, _), part in zip(plan, found) for cid, e in part.items()}


async def _leaves(catalog: Catalog, collection_id: str) -> list[str]:
    c = await catalog.get(collection_id)
    return list(c.leaf_nodes) if c is not None else []


async def counted(views: ViewService, catalog: Catalog, mode: ContextMode, s: Scope,
                  contents: list[str] | None = None) -> dict[str, tuple[Scope, ViewEntry]]:
    """{content id: (scope, entry)} of the live entries counted by the enrolment (or summary)
    scope `s`: of `contents`, or all of them."""
    if mode.per_content and contents is None:
        contents = await _leaves(catalog, s.collection_id)
    return await _gather(views, mode.read_scopes(s, contents))


def require_named(content_ids: list[str] | None, collection_id: str | None) -> None:
    """A read names contents or a collection (checked before who is asking, as always)."""
    if content_ids is None and collection_id is None:
        raise DomainError("give contentId, or a collectionId to read all its contents", "request.contentId")


async def read_contents(views: ViewService, catalog: Catalog, mode: ContextMode, user: str,
                        content_ids: list[str] | None, collection_id: str | None,
                        context_id: str | None) -> ContentsRead:
    """The live entries a view or assessment read names: contents, or a collection's."""
    require_named(content_ids, collection_id)
    first = content_ids[0] if content_ids else None
    if mode.per_content:
        # Every content is its own scope; a collection read covers its leaves.
        scope = Scope(user, collection_id or first, context_id or collection_id or first)
        ids = list(dict.fromkeys(content_ids)) if content_ids else await _leaves(catalog, collection_id)
        entries = await _per_content(views, mode, user, ids, context_id)
        return ContentsRead(scope, collection_id is None, ids, entries, True, mode, context_id)
    scope = mode.resolve(user, first, collection_id, context_id)
    multi = bool(content_ids and len(content_ids) > 1 and collection_id is None)
    if multi:
        ids = list(dict.fromkeys(content_ids))
        entries = await _per_content(views, mode, user, ids, context_id)
    else:
        entries = await views.read(scope, content_ids)
        ids = list(dict.fromkeys(content_ids)) if content_ids else sorted(entries)
    return ContentsRead(scope, multi, ids, entries, multi, mode, context_id)


async def _per_content(views: ViewService, mode: ContextMode, user: str, ids: list[str],
                       context_id: str | None) -> dict[str, ViewEntry]:
    plan = [(mode.resolve(user, cid, None, context_id), [cid]) for cid in ids]
    return {cid: e for cid, (_, e) in (await _gather(views, plan)).items()}

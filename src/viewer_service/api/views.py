"""The view lifecycle endpoints."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request

from ..domain.errors import DomainError
from ..domain.scope import Scope, resolve_scope
from ..domain.views import End, RowKey, Start, Update
from .openapi import documented
from .parsing import parse
from .envelope import envelope, msgid
from .schemas.views import EndRequest, ReadRequest, StartRequest, UpdateRequest, ViewKeys
from .state import ServiceApp, served

router = APIRouter(prefix="/v1/view", tags=["views"])


def _key(app: ServiceApp, request: Request, b: ViewKeys) -> tuple[RowKey, int]:
    user = app.user_for(request, b.userId)
    s = resolve_scope(user, b.contentId, b.collectionId, b.contextId, app.settings.context_mode)
    return RowKey(s.user_id, s.collection_id, s.context_id, b.contentId), app.views.check_ts(b.ts)


def _timespent(app: ServiceApp, value: float | None) -> float | None:
    if value is not None and value > app.settings.max_timespent_seconds:
        raise DomainError("timespent is larger than the allowed seconds per call", "request.timespent")
    return value


# The hot path: each handler looks its services up once.
@router.post("/start", openapi_extra=documented(StartRequest), summary="Start viewing a content (creates the row once)")
async def start(request: Request):
    app = served(request)
    body = await parse(request, StartRequest)
    b = body.request
    key, ts = _key(app, request, b)
    await app.views.write(Start(key, ts))
    return envelope("api.view.start", {b.contentId: "Progress started"}, msgid=msgid(request, body))


@router.post("/update", openapi_extra=documented(UpdateRequest), summary="Record progress of a started view")
async def update(request: Request):
    app = served(request)
    body = await parse(request, UpdateRequest)
    b = body.request
    key, ts = _key(app, request, b)
    await app.views.write(Update(key, ts, b.progress, b.progressDetails, _timespent(app, b.timespent)))
    return envelope("api.view.update", {b.contentId: "SUCCESS"}, msgid=msgid(request, body))


@router.post("/end", openapi_extra=documented(EndRequest), summary="End a started view: the content is completed")
async def end(request: Request):
    app = served(request)
    body = await parse(request, EndRequest)
    b = body.request
    key, ts = _key(app, request, b)
    await app.views.write(End(key, ts, b.progressDetails, _timespent(app, b.timespent)))
    return envelope("api.view.end", {b.contentId: "Progress ended"}, msgid=msgid(request, body))


async def read_entries(request: Request, b) -> tuple[str, Scope, bool, list[str], dict[str, dict]]:
    """The live entries a read names: (user, scope, one scope per content?, content ids, entries).
    Shared by view/read and assessment/read."""
    app = served(request)
    if b.contentId is None and b.collectionId is None:
        raise DomainError("give contentId, or a collectionId to read all its contents", "request.contentId")
    user = app.user_for(request, b.userId)
    mode = app.settings.context_mode
    first = b.contentId[0] if b.contentId else None
    if mode == "content":
        # Every content is its own scope; a collection read covers its leaves.
        scope = Scope(user, b.collectionId or first, b.contextId or b.collectionId or first)
        if b.contentId:
            ids = list(dict.fromkeys(b.contentId))
        else:
            collection = await app.catalog.get(b.collectionId)
            ids = list(collection.leaf_nodes) if collection is not None else []
        return user, scope, b.collectionId is None, ids, await _per_content(app, user, ids, b, mode)
    scope = resolve_scope(user, first, b.collectionId, b.contextId, mode)
    multi = bool(b.contentId and len(b.contentId) > 1 and b.collectionId is None)
    if multi:
        # Without a collection each content is its own scope (seed scenario 1).
        ids = list(dict.fromkeys(b.contentId))
        entries = await _per_content(app, user, ids, b, mode)
    else:
        entries = await app.views.read(scope, b.contentId)
        ids = list(dict.fromkeys(b.contentId)) if b.contentId else sorted(entries)
    return user, scope, multi, ids, entries


async def _per_content(app, user: str, ids: list[str], b, mode: str) -> dict[str, dict]:
    found = await asyncio.gather(*(
        app.views.read(resolve_scope(user, cid, None, b.contextId, mode), [cid]) for cid in ids))
    return {cid: e for part in found for cid, e in part.items()}


def read_result(user: str, scope: Scope, multi: bool, context_id: str | None, contents: list) -> dict:
    return {"userId": user, "collectionId": None if multi else scope.collection_id,
            "contextId": context_id if multi else scope.context_id, "contents": contents}


@router.post("/read", openapi_extra=documented(ReadRequest), summary="Read contents' status and progress (reflects every acknowledged write)")
async def read(request: Request):
    body = await parse(request, ReadRequest)
    b = body.request
    user, scope, multi, ids, entries = await read_entries(request, b)
    contents = []
    for cid in ids:
        e = entries.get(cid)
        contents.append({
            "identifier": cid,
            "status": e["status"] if e else 0,
            "progress": e["progress"] if e else 0,
            "progressDetails": e["progressDetails"] if e else None,
            "lastAccessTime": e["lastAccessTime"] if e else None,
            "lastCompletedTime": e["lastCompletedTime"] if e else None,
            # .get: entries cached before assessments existed have no score.
            "score": e.get("score") if e else None,
            "max_score": e.get("max_score") if e else None,
        })
        if e and e.get("archived"):  # progressDetails moved to the archive files (docs/archive.md)
            contents[-1]["archived"] = True
        if "provenance" in (b.fields or ()):
            # Why is this complete? Where the status was carried from, when, under which rule;
            # null when it was earned in this scope (docs/modes.md).
            contents[-1]["provenance"] = e.get("carriedFrom") if e else None
    return envelope("api.view.read", read_result(user, scope, multi, b.contextId, contents),
                    msgid=msgid(request, body))

"""The view lifecycle endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..domain.views import End, RowKey, Start, Update
from ..errors import DomainError
from ..services.reads import read_contents, require_named
from .body import documented, parse
from .envelope import envelope
from .errors import msgid
from .schemas import EndRequest, Envelope, ReadRequest, StartRequest, UpdateRequest, ViewKeys

router = APIRouter(prefix="/v1/view", tags=["views"])


def _key(request: Request, b: ViewKeys) -> tuple[RowKey, int]:
    app = request.app.state.app
    user = app.user_for(request, b.userId)
    s = app.settings.context_mode.resolve(user, b.contentId, b.collectionId, b.contextId)
    return RowKey(s.user_id, s.collection_id, s.context_id, b.contentId), app.views.check_ts(b.ts)


def _msgid(request: Request, body: Envelope) -> str | None:
    return body.params.msgid if body.params and body.params.msgid else msgid(request)


def _timespent(request: Request, value: float | None) -> float | None:
    if value is not None and value > request.app.state.app.settings.max_timespent_seconds:
        raise DomainError("timespent is larger than the allowed seconds per call", "request.timespent")
    return value


@router.post("/start", openapi_extra=documented(StartRequest), summary="Start viewing a content (creates the row once)")
async def start(request: Request):
    body = await parse(request, StartRequest)
    b = body.request
    key, ts = _key(request, b)
    await request.app.state.app.views.write(Start(key, ts))
    return envelope("api.view.start", {b.contentId: "Progress started"}, msgid=_msgid(request, body))


@router.post("/update", openapi_extra=documented(UpdateRequest), summary="Record progress of a started view")
async def update(request: Request):
    body = await parse(request, UpdateRequest)
    b = body.request
    key, ts = _key(request, b)
    op = Update(key, ts, b.progress, b.progressDetails, _timespent(request, b.timespent))
    await request.app.state.app.views.write(op)
    return envelope("api.view.update", {b.contentId: "SUCCESS"}, msgid=_msgid(request, body))


@router.post("/end", openapi_extra=documented(EndRequest), summary="End a started view: the content is completed")
async def end(request: Request):
    body = await parse(request, EndRequest)
    b = body.request
    key, ts = _key(request, b)
    app = request.app.state.app
    await app.views.write(End(key, ts, b.progressDetails, _timespent(request, b.timespent)))
    if app.worker is not None:
        app.worker.wake()  # an in-process worker recomputes now instead of at its next poll
    return envelope("api.view.end", {b.contentId: "Progress ended"}, msgid=_msgid(request, body))


@router.post("/read", openapi_extra=documented(ReadRequest), summary="Read contents' status and progress (reflects every acknowledged write)")
async def read(request: Request):
    body = await parse(request, ReadRequest)
    b = body.request
    app = request.app.state.app
    require_named(b.contentId, b.collectionId)
    r = await read_contents(app.views, app.catalog, app.settings.context_mode, app.user_for(request, b.userId),
                            b.contentId, b.collectionId, b.contextId)
    contents = []
    for cid in r.ids:
        e = r.entries.get(cid)
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
    return envelope("api.view.read", r.result(contents), msgid=_msgid(request, body))

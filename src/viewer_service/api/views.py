"""The view lifecycle endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..domain.views import UNSEEN, End, RowKey, Start, Update, ViewEntry
from ..errors import DomainError
from ..services.reads import read_contents, require_named
from .openapi import documented
from .parsing import parse
from .envelope import envelope, msgid
from .schemas.views import EndRequest, ReadRequest, StartRequest, UpdateRequest, ViewKeys
from .state import ServiceApp, served

router = APIRouter(prefix="/v1/view", tags=["views"])


def _key(app: ServiceApp, request: Request, b: ViewKeys) -> tuple[RowKey, int]:
    user = app.user_for(request, b.userId)
    s = app.settings.context_mode.resolve(user, b.contentId, b.collectionId, b.contextId)
    return RowKey(s.user_id, s.collection_id, s.context_id, b.contentId), app.views.check_ts(b.ts)


def _timespent(app: ServiceApp, value: float | None) -> float | None:
    if value is not None and value > app.settings.max_timespent_seconds:
        raise DomainError("timespent is larger than the allowed seconds per call", "request.timespent")
    return value


async def _write(request: Request, schema, make, api_id: str, message: str):
    """Parse, resolve the row, store the event `make(app, key, ts, b)` builds, acknowledge.
    The hot path: the services are looked up once, one extra call per request."""
    app = served(request)
    body = await parse(request, schema)
    b = body.request
    key, ts = _key(app, request, b)
    await app.views.write(make(app, key, ts, b))
    return envelope(api_id, {b.contentId: message}, msgid=msgid(request, body))


@router.post("/start", openapi_extra=documented(StartRequest), summary="Start viewing a content (creates the row once)")
async def start(request: Request):
    return await _write(request, StartRequest, lambda app, key, ts, b: Start(key, ts),
                        "api.view.start", "Progress started")


@router.post("/update", openapi_extra=documented(UpdateRequest), summary="Record progress of a started view")
async def update(request: Request):
    return await _write(request, UpdateRequest, lambda app, key, ts, b: Update(
        key, ts, b.progress, b.progressDetails, _timespent(app, b.timespent)), "api.view.update", "SUCCESS")


@router.post("/end", openapi_extra=documented(EndRequest), summary="End a started view: the content is completed")
async def end(request: Request):
    return await _write(request, EndRequest, lambda app, key, ts, b: End(
        key, ts, b.progressDetails, _timespent(app, b.timespent)), "api.view.end", "Progress ended")


@router.post("/read", openapi_extra=documented(ReadRequest), summary="Read contents' status and progress (reflects every acknowledged write)")
async def read(request: Request):
    body = await parse(request, ReadRequest)
    b = body.request
    app = request.app.state.app
    require_named(b.contentId, b.collectionId)
    r = await read_contents(app.views, app.catalog, app.settings.context_mode, app.user_for(request, b.userId),
                            b.contentId, b.collectionId, b.contextId)
    provenance = "provenance" in (b.fields or ())
    contents = [_content(cid, r.entries.get(cid, UNSEEN), provenance) for cid in r.ids]
    return envelope("api.view.read", r.result(contents), msgid=msgid(request, body))


def _content(cid: str, e: ViewEntry, provenance: bool) -> dict:
    """One content of a view/read answer."""
    item = {"identifier": cid, "status": e.status, "progress": e.progress, "progressDetails": e.progress_details,
            "lastAccessTime": e.last_access_time, "lastCompletedTime": e.last_completed_time,
            "score": e.score, "max_score": e.max_score}
    if e.archived:  # progressDetails moved to the archive files (docs/archive.md)
        item["archived"] = True
    if provenance:
        # Why is this complete? Where the status was carried from, when, under which rule;
        # null when it was earned in this scope (docs/modes.md).
        item["provenance"] = e.carried_from
    return item

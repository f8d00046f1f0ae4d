"""Assessment endpoints: submit attempts, read scores and attempts (docs/assessments.md)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from ..domain.views import UNSEEN, RowKey
from ..errors import DomainError, MissingField
from ..services.assessments import AttemptInput
from ..services.reads import read_contents, require_named
from .schemas.assessments import AssessmentReadRequest, AttemptBody, SubmitBody, SubmitRequest
from .openapi import documented
from .parsing import parse
from .envelope import envelope, msgid
from .state import served

router = APIRouter(prefix="/v1/assessment", tags=["assessments"])
_attempt = TypeAdapter(AttemptBody)


def _attempt_objects(b: SubmitBody) -> list[AttemptBody] | None:
    """Sunbird's form (attempt objects with `events`), or None for the seed's (ASSESS events)."""
    kinds = ["events" in item for item in b.assessments]
    if not any(kinds):
        return None
    if not all(kinds):
        odd = kinds.index(not kinds[0])
        raise DomainError("assessments holds either ASSESS events or attempt objects with events, not both",
                          f"request.assessments.{odd}")
    out = []
    for n, item in enumerate(b.assessments):
        try:
            out.append(_attempt.validate_python(item))
        except ValidationError as e:
            raise RequestValidationError([{**err, "loc": ("body", "request", "assessments", n, *err["loc"])}
                                          for err in e.errors(include_url=False)]) from None
    return out


def _inputs(request: Request, b: SubmitBody) -> list[AttemptInput]:
    app = served(request)
    mode = app.settings.context_mode
    attempts = _attempt_objects(b)
    if attempts is None:
        user = app.user_for(request, b.userId)
        if b.contentId is None:
            raise MissingField("contentId is required", "request.contentId")
        s = mode.resolve(user, b.contentId, b.collectionId, b.contextId)
        ts = app.views.check_ts(b.assessmentTs, "request.assessmentTs") if b.assessmentTs is not None else None
        return [AttemptInput(RowKey(s.user_id, s.collection_id, s.context_id, b.contentId), b.attemptId, ts,
                             b.assessments, "request.assessments")]
    user = app.user_for(request, b.userId or next((a.userId for a in attempts if a.userId), None))
    out = []
    for n, a in enumerate(attempts):
        at = f"request.assessments.{n}"
        if a.userId is not None and a.userId != user:
            raise DomainError("every attempt must be the request's learner's", f"{at}.userId")
        content = a.contentId or b.contentId
        if content is None:
            raise MissingField("contentId is required, in the attempt or the request", f"{at}.contentId")
        s = mode.resolve(user, content, a.collectionId or b.collectionId, a.contextId or b.contextId)
        ts = app.views.check_ts(a.assessmentTs, f"{at}.assessmentTs") if a.assessmentTs is not None else None
        out.append(AttemptInput(RowKey(s.user_id, s.collection_id, s.context_id, content), a.attemptId, ts,
                                a.events, f"{at}.events",
                                f"{at}.contentId" if a.contentId else "request.contentId"))
    return out


@router.post("/submit", openapi_extra=documented(SubmitRequest),
             summary="Submit assessment attempts (ASSESS events): scored, the best score kept")
async def submit(request: Request):
    body = await parse(request, SubmitRequest)
    app = served(request)
    inputs = _inputs(request, body.request)
    await app.assessments.submit(inputs)
    result = {i.key.content_id: "SUCCESS" for i in inputs}
    return envelope("api.assessment.submit", result, msgid=msgid(request, body))


@router.post("/read", openapi_extra=documented(AssessmentReadRequest),
             summary="Read contents' best score and attempts (reflects every acknowledged submit)")
async def read(request: Request):
    body = await parse(request, AssessmentReadRequest)
    b = body.request
    app = served(request)
    require_named(b.contentId, b.collectionId)
    r = await read_contents(app.views, app.catalog, app.settings.context_mode, app.user_for(request, b.userId),
                            b.contentId, b.collectionId, b.contextId)
    ids = r.ids if b.contentId else [cid for cid in r.ids if r.entries[cid].attempts]  # the scored ones
    details: dict[str, list] = {}
    if b.fields and "attempts" in b.fields and ids:
        if r.per_content:  # each content is its own scope
            parts = await asyncio.gather(*(app.assessments.attempt_details(r.scope_of(cid), [cid]) for cid in ids))
            details = {cid: d for part in parts for cid, d in part.items()}
        else:
            details = await app.assessments.attempt_details(r.scope, ids)
    contents = []
    for cid in ids:
        e = r.entries.get(cid, UNSEEN)
        item = {"identifier": cid, "score": e.score, "max_score": e.max_score, "attempts": e.attempts}
        if b.fields and "attempts" in b.fields:
            item["attemptDetails"] = details.get(cid, [])
            if e.archived or len(item["attemptDetails"]) < item["attempts"]:
                item["archived"] = True  # some attempts' details are in the archive files (docs/archive.md)
        contents.append(item)
    return envelope("api.assessment.read", r.result(contents), msgid=msgid(request, body))

"""Assessment endpoints: submit attempts, read scores and attempts (docs/assessments.md)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from ..domain.errors import DomainError
from ..domain.scope import resolve_scope
from ..domain.views import RowKey
from ..services.assessments import AttemptInput
from .schemas.assessments import AssessmentReadRequest, AttemptBody, SubmitBody, SubmitRequest
from .openapi import documented
from .parsing import parse
from .envelope import envelope, msgid
from .views import read_entries, read_result
from .state import served

router = APIRouter(prefix="/v1/assessment", tags=["assessments"])
_attempt = TypeAdapter(AttemptBody)


class MissingField(DomainError):
    code = "MISSING_FIELD"


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
        s = resolve_scope(user, b.contentId, b.collectionId, b.contextId, mode)
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
        s = resolve_scope(user, content, a.collectionId or b.collectionId, a.contextId or b.contextId, mode)
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
    user, scope, multi, ids, entries = await read_entries(request, b)
    if not b.contentId:
        ids = [cid for cid in ids if entries[cid].get("attempts")]  # the whole scope: its scored contents
    details: dict[str, list] = {}
    if b.fields and "attempts" in b.fields and ids:
        if multi or app.settings.context_mode == "content":  # each content is its own scope
            parts = await asyncio.gather(*(
                app.assessments.attempt_details(resolve_scope(user, cid, None, b.contextId, app.settings.context_mode),
                                                [cid]) for cid in ids))
            details = {cid: d for part in parts for cid, d in part.items()}
        else:
            details = await app.assessments.attempt_details(scope, ids)
    contents = []
    for cid in ids:
        e = entries.get(cid) or {}
        item = {"identifier": cid, "score": e.get("score"), "max_score": e.get("max_score"),
                "attempts": e.get("attempts") or 0}
        if b.fields and "attempts" in b.fields:
            item["attemptDetails"] = details.get(cid, [])
            if e.get("archived") or len(item["attemptDetails"]) < item["attempts"]:
                item["archived"] = True  # some attempts' details are in the archive files (docs/archive.md)
        contents.append(item)
    return envelope("api.assessment.read", read_result(user, scope, multi, b.contextId, contents),
                    msgid=msgid(request, body))

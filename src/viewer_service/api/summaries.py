"""Viewer summaries: list, read, and erase."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..errors import DomainError, EnrolmentNotFound, InvalidValue
from .openapi import documented
from .parsing import parse, path_id
from .envelope import envelope, msgid
from .scope import scope_of
from .schemas.enrolments import ScopeRequest
from .schemas.summaries import EraseRequest
from .state import served

router = APIRouter(prefix="/v1/summary", tags=["summaries"])


@router.get("/list/{userId}", summary="Summaries of all a learner's enrolments (read-after-write)")
async def summary_list(request: Request, userId: str):
    app = served(request)
    user = app.user_for(request, path_id(userId, "userId"))
    return envelope("api.summary.list", {"summary": await app.summaries.list(user)}, msgid=msgid(request))


@router.post("/read", openapi_extra=documented(ScopeRequest), summary="The summary of one enrolment (read-after-write)")
async def summary_read(request: Request):
    app = served(request)
    body = await parse(request, ScopeRequest)
    s = scope_of(request, body.request)
    found = await app.summaries.read(s)
    if found is None:
        raise EnrolmentNotFound("the learner has neither an enrolment nor progress in this scope", "request")
    return envelope("api.summary.read", found, msgid=msgid(request, body))


def _erase_all(request: Request) -> bool:
    """`?all` or `?all=true` erases everything; any other value is refused, never taken as a yes or
    a no: this is the most destructive call of the API."""
    values = request.query_params.getlist("all")
    if not values:
        return False
    if any(v.lower() not in ("", "true") for v in values):
        raise InvalidValue("all takes no value or true (to erase one enrolment, omit it and name it in the body)",
                          "all")
    return True


@router.delete("/delete/{userId}", openapi_extra=documented(EraseRequest),
               summary="Erase a learner's data: all enrolments (?all) or the one named in the body")
async def summary_delete(request: Request, userId: str):
    app = served(request)
    user = app.user_for(request, path_id(userId, "userId"))
    principal = app.auth.authenticate(request.headers) if app.settings.auth != "none" else None
    by = principal.user_id if principal is not None else None
    if _erase_all(request):
        counts = await app.erase.erase(user, None, by)
        return envelope("api.summary.delete", {"erased": counts}, msgid=msgid(request))
    if not await request.body():
        raise DomainError("name the enrolment to erase in the body, or erase all with ?all", "request.collectionId")
    body = await parse(request, EraseRequest)
    b = body.request
    if b.userId is not None and b.userId != user:
        raise DomainError("the body's userId differs from the path's", "request.userId")
    s = scope_of(request, b.model_copy(update={"userId": user}))
    counts = await app.erase.erase(user, s, by)
    return envelope("api.summary.delete", {"erased": counts}, msgid=msgid(request, body))

"""Contexts, enrolments and issued certificates."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ..errors import ContextNotFound, DomainError
from .openapi import documented
from .parsing import parse, path_id
from .envelope import envelope, msgid
from .scope import scope_of
from .schemas.enrolments import CertificateRequest, ContextRequest, EnrolRequest, ScopeRequest
from .state import served

router = APIRouter(tags=["enrolments"])


def enrolment_result(row) -> dict:
    return {
        "userId": row.user_id, "collectionId": row.collection_id, "contextId": row.context_id,
        "enrolledDate": row.enrolled_date, "active": row.active, "status": row.status,
        "progress": row.progress, "completedOn": row.completed_on,
        "issuedCertificates": list(row.issued_certificates),
        "movedTo": row.moved_to,  # move mode: where this enrolment's progress went
    }


def _context_result(row) -> dict:
    return {"contextId": row.context_id, "type": row.type, "collectionIds": list(row.collection_ids),
            "startDate": row.start_date, "endDate": row.end_date, "updatedAt": row.updated_at,
            "document": row.document}


@router.put("/v1/context/{contextId}", openapi_extra=documented(ContextRequest),
            summary="Register or replace a context (a batch, a program) and the collections it offers")
async def put_context(request: Request, contextId: str):
    app = served(request)
    app.require_privileged(request, "only an admin or service role may write contexts")
    cid = path_id(contextId, "contextId")
    body = await parse(request, ContextRequest)
    if body.request.carryForward is not None and app.settings.context_mode.shared_by_contexts:
        raise DomainError("carry-forward works on top of the strict context mode; this instance runs in "
                          f"'{app.settings.context_mode}' mode", "request.carryForward")
    doc = body.request.model_dump(mode="json", exclude_none=True)
    await app.enrolments.put_context(cid, doc)
    if app.sunbird is not None:
        app.sunbird.forget_context(cid)  # lms-service's routes check batches against a short cache
    row = await app.enrolments.get_context(cid)
    return envelope("api.context.put", _context_result(row), msgid=msgid(request, body))


@router.get("/v1/context/{contextId}", summary="Read a context")
async def get_context(request: Request, contextId: str):
    app = served(request)
    app.auth.authenticate(request.headers)
    cid = path_id(contextId, "contextId")
    row = await app.enrolments.get_context(cid)
    if row is None:
        raise ContextNotFound(f"context {cid!r} is not registered", "contextId")
    return envelope("api.context.get", _context_result(row), msgid=msgid(request))


@router.post("/v1/enrol", openapi_extra=documented(EnrolRequest),
             summary="Enrol a learner in a collection within a context (idempotent)")
async def enrol(request: Request):
    app = served(request)
    body = await parse(request, EnrolRequest)
    b = body.request
    s = scope_of(request, b)
    enrolled = app.views.check_ts(b.enrolledDate, "request.enrolledDate") if b.enrolledDate is not None else None
    row, changed, carried = await app.enrolments.enrol(s, enrolled)
    result = {"response": "SUCCESS", "created": changed, **enrolment_result(row),
              # What the post-enrol action carried in (docs/modes.md): content ids, and the
              # enrolments whose progress moved here.
              "carried": sorted({v.key.content_id for v in carried.rows}),
              "movedFrom": [{"collectionId": m.collection_id, "contextId": m.context_id} for m in carried.moved_from]}
    return envelope("api.enrol", result, msgid=msgid(request, body))


@router.post("/v1/unenrol", openapi_extra=documented(ScopeRequest),
             summary="Leave an enrolment: it becomes inactive; progress is kept")
async def unenrol(request: Request):
    app = served(request)
    body = await parse(request, ScopeRequest)
    row = await app.enrolments.unenrol(scope_of(request, body.request))
    return envelope("api.unenrol", {"response": "SUCCESS", **enrolment_result(row)}, msgid=msgid(request, body))


@router.post("/v1/certificate/issued", openapi_extra=documented(CertificateRequest),
             summary="Record a certificate issued for an enrolment (certificate services)")
async def certificate_issued(request: Request):
    app = served(request)
    app.require_privileged(request, "only an admin or service role may record certificates")
    body = await parse(request, CertificateRequest)
    b = body.request
    cert = b.certificate.model_dump(mode="json", exclude_none=True)
    row = await app.enrolments.record_certificate(scope_of(request, b), cert)
    return envelope("api.certificate.issued", {"response": "SUCCESS", **enrolment_result(row)},
                    msgid=msgid(request, body))

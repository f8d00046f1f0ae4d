"""Course-wide reports (docs/reports.md): a context's roster and stats for course staff (an
admin role or a VIEWER_REPORT_ROLES role), a learner's report for the learner or staff."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import StreamingResponse

from ..domain.reports import MAX_OFFSET_MINUTES, RosterFilter, parse_time
from ..errors import Forbidden, InvalidReportValue
from .auth import Principal
from .parsing import path_id
from .envelope import envelope, msgid
from .state import served

router = APIRouter(prefix="/v1/report", tags=["reports"])

MAX_LIMIT = 1000
_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def may_report(app, principal: Principal) -> bool:
    return app.settings.auth == "none" or principal.is_privileged or bool(principal.roles & app.settings.report_role_set)


def require_report(request: Request) -> None:
    app = served(request)
    principal = app.auth.authenticate(request.headers)  # 401 without a valid token (VIEWER_AUTH=jwt)
    if not may_report(app, principal):
        raise Forbidden("reports need an admin role or a report role", "request")


def _int(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidReportValue(f"{name} must be an integer", name) from None
    if not lo <= value <= hi:
        raise InvalidReportValue(f"{name} must be between {lo} and {hi}", name)
    return value


def _id(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return path_id(raw, name) if raw else None


def _filter(request: Request) -> RosterFilter:
    q = request.query_params
    active = q.get("active")
    if active not in (None, "", "true", "false"):
        raise InvalidReportValue("active must be true or false", "active")
    search = q.get("search") or None
    if search is not None and len(search) > 256:
        raise InvalidReportValue("search is longer than any userId", "search")
    return RosterFilter(
        collection_id=_id(request, "collectionId"),
        status=_int(request, "status", None, 0, 2),
        completed_from=parse_time(q.get("completedFrom"), "completedFrom"),
        completed_to=parse_time(q.get("completedTo"), "completedTo", end=True),
        active=None if not active else active == "true",
        search=search,
    )


@router.get("/context/{contextId}", summary="A context's enrolments: a page (cursor), or the whole roster as a "
                                             "CSV or JSON file (format=csv|json)")
async def roster(request: Request, contextId: str,
                 collectionId: str | None = Query(None), status: str | None = Query(None, description="0, 1 or 2"),
                 completedFrom: str | None = Query(None, description="epoch ms or ISO 8601 date/date-time"),
                 completedTo: str | None = Query(None, description="exclusive; a date alone means its whole day"),
                 active: str | None = Query(None, description="true or false"), search: str | None = Query(None, description="userId prefix"),
                 cursor: str | None = None, limit: str | None = Query(None, description="1-1000, default 100"),
                 fmt: str | None = Query(None, alias="format", description="csv or json: the whole roster")):
    require_report(request)
    app = served(request)
    context_id = path_id(contextId, "contextId")
    f = _filter(request)
    fmt = request.query_params.get("format")
    if fmt:
        if fmt not in MEDIA_TYPES:
            raise InvalidReportValue("format must be csv or json", "format")
        await app.reports.check_context(context_id)  # a 404 before the first byte, not a broken file
        body = app.reports.roster_csv(context_id, f) if fmt == "csv" else app.reports.roster_json(context_id, f)
        name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in context_id)[:100]
        headers = {**_HEADERS, "Content-Disposition": f'attachment; filename="{name}_roster.{fmt}"'}
        return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)
    page = await app.reports.roster(context_id, f, request.query_params.get("cursor"),
                                    _int(request, "limit", 100, 1, MAX_LIMIT))
    return envelope("api.report.roster", page, msgid=msgid(request))


@router.get("/context/{contextId}/stats", summary="A context's stats: learners by status, progress histogram, "
                                                  "completions per day, median time to complete, assessment scores")
async def stats(request: Request, contextId: str, collectionId: str | None = Query(None),
                passPercent: str | None = Query(None, description="0-100, default 50"),
                utcOffsetMinutes: str | None = Query(None, description="-840..840: days are counted in this zone")):
    require_report(request)
    app = served(request)
    raw = request.query_params.get("passPercent")
    try:
        pass_percent = 50.0 if raw in (None, "") else float(raw)
    except ValueError:
        raise InvalidReportValue("passPercent must be a number", "passPercent") from None
    if not 0 <= pass_percent <= 100:
        raise InvalidReportValue("passPercent must be between 0 and 100", "passPercent")
    offset = _int(request, "utcOffsetMinutes", 0, -MAX_OFFSET_MINUTES, MAX_OFFSET_MINUTES)
    result = await app.reports.stats(path_id(contextId, "contextId"), _id(request, "collectionId"),
                                     pass_percent, offset)
    return envelope("api.report.stats", result, msgid=msgid(request))


@router.get("/contexts", summary="Contexts whose id starts with a prefix (for picking one)")
async def contexts(request: Request, prefix: str = "", limit: str | None = Query(None, description="1-1000, default 50")):
    require_report(request)
    app = served(request)
    prefix = request.query_params.get("prefix") or ""
    if len(prefix) > 256:
        raise InvalidReportValue("prefix is longer than any contextId", "prefix")
    found = await app.reports.contexts(prefix, _int(request, "limit", 50, 1, MAX_LIMIT))
    return envelope("api.report.contexts", {"contexts": found}, msgid=msgid(request))


@router.get("/learner/{userId}", summary="A learner's report: enrolments with units, scores, certificates, "
                                         "recent completions (the learner, or course staff)")
async def learner(request: Request, userId: str):
    app = served(request)
    user = path_id(userId, "userId")
    principal = app.auth.authenticate(request.headers)
    if app.settings.auth != "none" and principal.user_id != user and not may_report(app, principal):
        raise Forbidden("a learner may only see their own report", "userId")
    return envelope("api.report.learner", await app.reports.learner(user), msgid=msgid(request))


@router.get("/me", summary="Who the caller is, and whether they may read course-wide reports")
async def me(request: Request):
    app = served(request)
    principal = app.auth.authenticate(request.headers)
    return envelope("api.report.me", {"userId": principal.user_id, "roles": sorted(principal.roles),
                                      "auth": app.settings.auth, "reports": may_report(app, principal)},
                    msgid=msgid(request))

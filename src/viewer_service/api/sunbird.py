"""lms-service's content state and enrolment list routes, wire-compatible (docs/sunbird.md).

Bodies are checked by hand, not by a pydantic model: clients of these routes expect lms-service's
error codes in params.err (CONTENT_ID_REQUIRED_ERROR, ...), checked in its order."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request

from ..domain.sunbird import data_type, invalid, missing, parse_date
from ..errors import Forbidden, NotFound, SunbirdError
from ..services.sunbird import AssessmentState, ContentState
from ..services.views import MIN_TS
from .auth import subject_user
from .parsing import unstorable
from .envelope import envelope, msgid
from .schemas.views import check_details
from .state import served

router = APIRouter(tags=["sunbird"])

MAX_ITEMS = 1000  # contents + assessments in one update
_ID_BAD = set(chr(c) for c in range(32)) | {"\x7f"}


class Acting:
    """Who a legacy request acts for, and which other users its items may name."""

    def __init__(self, user: str | None, allowed: frozenset[str] | None):
        self.user = user
        self._allowed = allowed  # None: any user (trusted caller)

    def may(self, user: str) -> bool:
        return self._allowed is None or user in self._allowed


def _acting(request: Request, body_user: str | None, private: bool, field: str = "request.userId") -> Acting:
    """Public routes act for the token's user, or the managed user it names; a token with an
    admin or service role may name anyone. /private/ routes trust the body (or path)."""
    app = served(request)
    if private:
        if not app.settings.private_routes:
            raise NotFound("the /private/ routes are turned off (VIEWER_PRIVATE_ROUTES)")
        return Acting(body_user, None)
    if app.settings.auth == "none":
        return Acting(body_user, None)  # trusted: a gateway authenticated the caller
    principal = app.auth.authenticate(request.headers)
    managed = app.auth.managed_user(request.headers, principal)
    own = managed or principal.user_id
    if principal.is_privileged:
        return Acting(body_user or own, None)
    allowed = frozenset(u for u in (principal.user_id, managed) if u)
    if body_user is not None and body_user not in allowed:
        raise Forbidden("a learner may only access their own data", field)
    return Acting(body_user or own, allowed)


async def _body(request: Request, *, optional: bool = False) -> dict:
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    bad = unstorable(raw)
    if bad:  # a number beyond 64 bits, NaN, the NUL character: the same answer on both backends
        path, why = bad
        field = ".".join(map(str, path))
        raise SunbirdError("INVALID_PARAMETER_VALUE", f"Invalid value for parameter {field}: {why}.", field)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise SunbirdError("INVALID_REQUESTED_DATA", "Requested data for this operation is not valid.",
                           "request") from None
    inner = doc.get("request") if isinstance(doc, dict) else None
    if not isinstance(inner, dict):
        if optional and isinstance(doc, dict) and "request" not in doc:
            return {}
        raise SunbirdError("INVALID_REQUESTED_DATA", "Requested data for this operation is not valid.", "request")
    return inner


def _id(value: Any, name: str, field: str, error: SunbirdError | None = None) -> str | None:
    """An id, or None when absent or blank (the caller decides if that is an error)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if error is not None:
            raise error
        return None
    if not isinstance(value, str):
        raise data_type(name, "String", field)
    if len(value) > 256 or _ID_BAD & set(value):
        raise invalid(value[:64], name, field)
    return value


def _user(value: Any, field: str) -> str | None:
    return _id(value, "userId", field)


def _int(value: Any, name: str, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise data_type(name, "Integer", field)
    return int(value)


def _content(item: Any, n: int, acting: Acting, max_details_bytes: int) -> ContentState:
    at = f"request.contents.{n}"
    if not isinstance(item, dict):
        raise data_type("contents", "List of objects", at)
    content = _id(item.get("contentId"), "contentId", f"{at}.contentId",
                  SunbirdError("CONTENT_ID_REQUIRED_ERROR", "Content id is mandatory.", f"{at}.contentId"))
    course = _id(item.get("courseId") or item.get("collectionId"), "courseId", f"{at}.courseId",
                 SunbirdError("COURSE_ID_REQUIRED_ERROR", "Course id is mandatory.", f"{at}.courseId"))
    status = _int(item.get("status"), "status", f"{at}.status")
    if status is None:
        raise SunbirdError("CONTENT_STATUS_MISSING_ERROR", "content status is required .", f"{at}.status")
    if status < 0:
        raise invalid(status, "status", f"{at}.status")
    times = {k: parse_date(item.get(k), f"{at}.{k}") for k in ("lastAccessTime", "lastCompletedTime", "lastUpdatedTime")}
    for k, t in times.items():
        if t is not None and t < MIN_TS:
            raise SunbirdError("DATE_FORMAT_ERRROR", "Date format error.", f"{at}.{k}")
    # Sunbird silently drops an item without a batch; the client would never know.
    batch = _id(item.get("batchId"), "batchId", f"{at}.batchId",
                SunbirdError("COURSE_BATCH_ID_MISSING", "Course batch Id required", f"{at}.batchId"))
    progress = _int(item.get("progress"), "progress", f"{at}.progress")
    if progress is not None and not 0 <= progress <= 100:
        raise invalid(progress, "progress", f"{at}.progress")
    details = item.get("progressdetails", item.get("progressDetails"))
    if details is not None:
        if not isinstance(details, dict):
            raise data_type("progressdetails", "Map", f"{at}.progressdetails")
        try:
            check_details(details, max_details_bytes)
        except ValueError as e:
            raise SunbirdError("INVALID_PARAMETER_VALUE", str(e), f"{at}.progressdetails") from None
    user = _user(item.get("userId"), f"{at}.userId") or acting.user
    if not acting.may(user):
        raise Forbidden("a learner may only write their own progress", f"{at}.userId")
    return ContentState(user, content, course, batch, status, progress, details,
                        times["lastAccessTime"], times["lastCompletedTime"])


def _assessment(item: Any, n: int, acting: Acting, now: int, skew: int) -> AssessmentState:
    at = f"request.assessments.{n}"
    if not isinstance(item, dict):
        raise data_type("assessments", "List of objects", at)
    ts = item.get("assessmentTs")
    if isinstance(ts, str) and ts.strip().isdigit():
        ts = int(ts)  # its API doc sends it as a string
    if ts is None or isinstance(ts, bool) or not isinstance(ts, int):
        raise SunbirdError("ATTEMPTED_DATE_REQUIRED", "Attempted data is required.", f"{at}.assessmentTs")
    if ts < MIN_TS:
        raise invalid(ts, "assessmentTs", f"{at}.assessmentTs")
    course = _id(item.get("courseId") or item.get("collectionId"), "courseId", f"{at}.courseId",
                 SunbirdError("COURSE_ID_REQUIRED_ERROR", "Please provide course id.", f"{at}.courseId"))
    content = _id(item.get("contentId"), "contentId", f"{at}.contentId",
                  SunbirdError("CONTENT_ID_REQUIRED_ERROR", "Please provide content id.", f"{at}.contentId"))
    batch = _id(item.get("batchId"), "batchId", f"{at}.batchId",
                SunbirdError("COURSE_BATCH_ID_MISSING", "Course batch Id required", f"{at}.batchId"))
    user = _id(item.get("userId"), "userId", f"{at}.userId",
               SunbirdError("USERID_MISSING", "UserId is mandatory.", f"{at}.userId"))
    attempt = _id(item.get("attemptId"), "attemptId", f"{at}.attemptId",
                  SunbirdError("ATTEMPT_ID_REQUIRED_ERROR", "Please provide attempt id.", f"{at}.attemptId"))
    events = item.get("events")
    if not isinstance(events, list):
        raise SunbirdError("EVENTS_DATA_MISSING", "Events array is mandatory", f"{at}.events")
    if not acting.may(user):
        raise Forbidden("a learner may only submit their own attempts", f"{at}.userId")
    return AssessmentState(user, content, course, batch, attempt, min(ts, now + skew), events, f"{at}.events")


def _list(b: dict, name: str) -> list | None:
    v = b.get(name)
    if v is not None and not isinstance(v, list):
        raise data_type(name, "List", f"request.{name}")
    return v


async def _update(request: Request):
    app = served(request)
    b = await _body(request)
    contents, assessments = _list(b, "contents"), _list(b, "assessments")
    acting = _acting(request, _user(b.get("userId"), "request.userId"), private=False)
    if not contents and not assessments:
        # lms-service's enrolment sync: recompute the enrolment from its contents.
        course = _id(b.get("courseId") or b.get("collectionId"), "courseId", "request.courseId",
                     missing("courseId", "request.courseId"))
        batch = _id(b.get("batchId"), "batchId", "request.batchId", missing("batchId", "request.batchId"))
        if acting.user is None:
            raise missing("userId", "request.userId")
        await app.sunbird.sync_enrolment(acting.user, course, batch)
        return envelope("api.content.state.update", {"response": "SUCCESS"}, msgid=msgid(request))
    contents, assessments = contents or [], assessments or []
    if len(contents) + len(assessments) > MAX_ITEMS:
        raise SunbirdError("TOO_MANY_ITEMS", f"at most {MAX_ITEMS} contents and assessments per request", "request")
    if acting.user is None and any(not isinstance(c, dict) or not c.get("userId") for c in contents):
        raise SunbirdError("USERID_MISSING", "UserId is mandatory.", "request.userId")
    now = app.views.clock()
    items = [_content(c, n, acting, app.settings.max_progress_details_bytes) for n, c in enumerate(contents)]
    attempts = [_assessment(a, n, acting, now, app.views.max_skew_ms) for n, a in enumerate(assessments)]
    result = await app.sunbird.update(items, attempts)
    return envelope("api.content.state.update", result, msgid=msgid(request))


@router.patch("/v1/content/state/update", summary="lms-service: update content state (upsert; monotonic)")
async def update_state(request: Request):
    return await _update(request)


@router.patch("/v1/user/content/state", summary="lms-service: update content state (alias)")
async def update_state_alias(request: Request):
    return await _update(request)


def _public_and_private(path: str, handler, name: str, summary: str, private_summary: str) -> None:
    """POST `path` and `/private<path>` on one handler taking `private`; the names (and so the
    OpenAPI operation ids) are those the two decorated functions had."""
    async def public(request: Request):
        return await handler(request, private=False)

    async def internal(request: Request):
        return await handler(request, private=True)

    router.add_api_route(path, public, methods=["POST"], name=name, summary=summary)
    router.add_api_route("/private" + path, internal, methods=["POST"], name="private_" + name,
                         summary=private_summary)


async def _read(request: Request, private: bool):
    app = served(request)
    b = await _body(request)
    course_ids, content_ids, fields = _list(b, "courseIds"), _list(b, "contentIds"), _list(b, "fields")
    acting = _acting(request, _user(b.get("userId"), "request.userId"), private)
    if acting.user is None:
        raise missing("userId", "request.userId")
    course = _id(b.get("courseId") or b.get("collectionId") or (course_ids[0] if course_ids else None),
                 "courseId", "request.courseId", missing("courseId", "request.courseId"))
    batch = _id(b.get("batchId"), "batchId", "request.batchId", missing("batchId", "request.batchId"))
    if content_ids is not None:
        if len(content_ids) > MAX_ITEMS:
            raise SunbirdError("TOO_MANY_ITEMS", f"contentIds takes at most {MAX_ITEMS} ids", "request.contentIds")
        content_ids = [_id(c, "contentIds", f"request.contentIds.{n}", missing("contentIds", f"request.contentIds.{n}"))
                       for n, c in enumerate(content_ids)]
    with_score = bool(fields) and "score" in fields
    found = await app.sunbird.read(acting.user, course, batch, content_ids or None, with_score)
    return envelope("api.content.state.read", {"contentList": found}, msgid=msgid(request))


_public_and_private("/v1/content/state/read", _read, "read_state", "lms-service: read content state",
                    "lms-service: read content state (internal callers)")


def _batch_fields(request: Request) -> list[str] | None:
    raw = request.query_params.get("batchDetails")
    return None if raw is None else [f.strip() for f in raw.split(",") if f.strip()]


async def _courses(request: Request, user: str, course_ids: list | None = None):
    app = served(request)
    if course_ids is not None:
        course_ids = [_id(c, "courseIds", f"request.courseIds.{n}", missing("courseIds", f"request.courseIds.{n}"))
                      for n, c in enumerate(course_ids)]
    courses = await app.sunbird.courses(user, course_ids, _batch_fields(request))
    return envelope("api.user.courses.list", {"courses": courses}, msgid=msgid(request))


def _path_user(uid: str, private: bool) -> str:
    uid = subject_user(uid) if private else uid  # lms-service strips f:<provider>: on the private route
    return _id(uid, "userId", "userId", missing("userId", "userId"))


@router.get("/v1/user/courses/list/{uid}", summary="lms-service: the learner's enrolments (live progress)")
async def list_courses(request: Request, uid: str):
    acting = _acting(request, _path_user(uid, False), private=False, field="userId")
    return await _courses(request, acting.user)


@router.get("/private/v1/user/courses/list/{uid}", summary="lms-service: enrolments (internal callers)")
async def private_list_courses(request: Request, uid: str):
    return await _courses(request, _acting(request, _path_user(uid, True), private=True).user)


async def _list_v2(request: Request, private: bool):
    b = await _body(request, optional=not private)
    course_ids = _list(b, "courseIds")
    acting = _acting(request, _user(b.get("userId"), "request.userId"), private)
    if acting.user is None:
        raise missing("userId", "request.userId")
    return await _courses(request, acting.user, course_ids)


_public_and_private("/v2/user/courses/list", _list_v2, "list_courses_v2",
                    "lms-service: the learner's enrolments, v2", "lms-service: enrolments, v2 (internal callers)")

"""Every failure answers in the envelope with a status, an error code and the field at fault."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..adapters.db.engine import is_unavailable
from ..errors import Forbidden, NotFound, ServiceError, Unauthenticated, Unavailable
from .envelope import error, msgid

log = logging.getLogger(__name__)

# The HTTP status of each branch of errors.py; the nearest listed ancestor decides, else 400.
STATUS = {NotFound: 404, Unauthenticated: 401, Forbidden: 403, Unavailable: 503}


def http_status(exc: ServiceError) -> int:
    for cls in type(exc).__mro__:
        status = STATUS.get(cls)
        if status is not None:
            return status
    return 400

# Paths that carry an id are matched by prefix, then by method; a lookup by path alone (the
# body guard's, which only sees bodies) gets the id of the writing method.
_PREFIX_IDS = {
    "/v1/collection/": {"GET": "api.collection.get", "PUT": "api.collection.put"},
    "/v1/context/": {"GET": "api.context.get", "PUT": "api.context.put"},
    "/v1/summary/list/": {"GET": "api.summary.list"},
    "/v1/summary/delete/": {"DELETE": "api.summary.delete"},
    "/v1/summary/download/": {"GET": "api.summary.download"},
    "/v1/user/courses/list/": {"GET": "api.user.courses.list"},
    "/private/v1/user/courses/list/": {"GET": "api.user.courses.list"},
    "/v1/report/": {"GET": "api.report"},
}


class _ApiIds(dict):
    def get(self, path, default=None, method="PUT"):
        found = super().get(path)
        if found is not None:
            return found
        for prefix, by_method in _PREFIX_IDS.items():
            if path.startswith(prefix):
                return by_method.get(method) or next(iter(by_method.values()))
        return default


API_IDS = _ApiIds({
    "/v1/view/start": "api.view.start",
    "/v1/view/update": "api.view.update",
    "/v1/view/end": "api.view.end",
    "/v1/view/read": "api.view.read",
    "/v1/assessment/submit": "api.assessment.submit",
    "/v1/assessment/read": "api.assessment.read",
    "/v1/enrol": "api.enrol",
    "/v1/unenrol": "api.unenrol",
    "/v1/certificate/issued": "api.certificate.issued",
    "/v1/summary/read": "api.summary.read",
    "/health": "api.health",
    "/v1/content/state/update": "api.content.state.update",
    "/v1/user/content/state": "api.content.state.update",
    "/v1/content/state/read": "api.content.state.read",
    "/private/v1/content/state/read": "api.content.state.read",
    "/v2/user/courses/list": "api.user.courses.list",
    "/private/v2/user/courses/list": "api.user.courses.list",
    "/health/service": "api.health.service",
})

_TYPE_TAGS = {"int", "str", "float", "bool", "datetime", "constrained-str", "function-after", "function-plain"}
_CODES = {
    "json_invalid": "INVALID_JSON",
    "missing": "MISSING_FIELD",
    "string_too_long": "FIELD_TOO_LONG",
    "string_too_short": "EMPTY_FIELD",
    "too_long": "TOO_MANY_ITEMS",
    "too_short": "EMPTY_FIELD",
    "string_pattern_mismatch": "INVALID_VALUE",
    "greater_than_equal": "OUT_OF_RANGE",
    "less_than_equal": "OUT_OF_RANGE",
    "value_error": "INVALID_VALUE",
}


def api_id(request: Request) -> str:
    return API_IDS.get(request.url.path, "api.viewer", request.method)


def _field(loc) -> str:
    parts = []
    for p in loc[1:] if loc and loc[0] == "body" else loc:
        if isinstance(p, str) and (p in _TYPE_TAGS or "[" in p):
            break  # pydantic names the union member here; the field is what came before
        parts.append(str(p))
    return ".".join(parts) or "request"


def _code(err_type: str) -> str:
    if err_type in _CODES:
        return _CODES[err_type]
    if err_type.endswith(("_type", "_parsing")) or err_type.startswith(("int_", "float_", "model_")):
        return "INVALID_TYPE"
    return "INVALID_VALUE"


def _allowed(request: Request) -> list[str]:
    methods = set()
    for route in request.app.router.routes:
        if getattr(route, "methods", None) and route.matches(request.scope)[0] != Match.NONE:
            methods |= route.methods
    return sorted(methods)


def _unavailable_response(request: Request):
    return error(api_id(request), 503, "SERVICE_UNAVAILABLE", "the database is unavailable; retry later",
                 None, msgid(request))


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors, seen = [], set()
        for e in exc.errors():
            field = _field(e.get("loc", ()))
            if field in seen:
                continue
            seen.add(field)
            msg = e.get("msg", "invalid value")
            if e.get("type") == "json_invalid":
                field, msg = "request", "the body is not valid JSON"
            errors.append({"field": field, "code": _code(e.get("type", "")), "message": msg})
        first = errors[0]
        return error(api_id(request), 400, first["code"], f"{first['field']}: {first['message']}", first["field"],
                     msgid(request), errors)

    @app.exception_handler(ServiceError)
    async def _service(request: Request, exc: ServiceError):
        if isinstance(exc, Unavailable):
            log.warning("database unavailable: %s", exc)
            return _unavailable_response(request)
        return error(api_id(request), http_status(exc), exc.code, exc.message, exc.field, msgid(request))

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        response = error(api_id(request), exc.status_code, code, str(exc.detail), None, msgid(request))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not just the first route's
            response.headers["Allow"] = ", ".join(_allowed(request))
        return response

    app.add_middleware(Failsafe)


class Failsafe:
    """ASGI middleware: any exception no handler took becomes a complete envelope response, a 503
    when the database is unavailable, else a logged 500. Starlette's own last-resort handler
    re-raises after answering, and the server then drops the keep-alive connection (the client's
    next request failed with ECONNRESET); here the exception ends with the answer."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last resort
            request = Request(scope)
            if started:  # the answer is half sent: nothing truthful can follow; the server closes
                log.exception("error after the response started on %s", request.url.path)
                raise
            if is_unavailable(exc):
                log.warning("database unavailable on %s: %r", request.url.path, exc)
                response = _unavailable_response(request)
            else:
                log.exception("unexpected error on %s", request.url.path)
                response = error(api_id(request), 500, "INTERNAL_ERROR", "unexpected error; it has been logged", None,
                                 msgid(request))
            await response(scope, receive, send)

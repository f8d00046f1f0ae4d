"""The Sunbird response envelope: id, ver, ts, params{resmsgid,msgid,err,status,errmsg},
responseCode, result."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

RESPONSE_CODES = {
    200: "OK", 400: "CLIENT_ERROR", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "RESOURCE_NOT_FOUND",
    405: "CLIENT_ERROR", 409: "CONFLICT", 413: "CLIENT_ERROR", 415: "CLIENT_ERROR", 503: "SERVICE_UNAVAILABLE",
    500: "SERVER_ERROR",
}


# A database restart takes a few seconds; clients that honour Retry-After come back after it.
RETRY_AFTER_SECONDS = 2

_second = [-1, ""]


def timestamp() -> str:
    """Sunbird's format, "2021-06-23 05:37:40:575+0000" (UTC); the seconds part is reused."""
    ms = time.time_ns() // 1_000_000
    sec, milli = divmod(ms, 1000)
    if _second[0] != sec:
        _second[:] = [sec, time.strftime("%Y-%m-%d %H:%M:%S:", time.gmtime(sec))]
    return f"{_second[1]}{milli:03d}+0000"


def message_id() -> str:
    # A random (version 4) UUID without a system call per response.
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def msgid(request: Request, body: Any = None) -> str | None:
    """The caller's message id, echoed back: the body's `params.msgid`, else a request-id header."""
    params = body.params if body is not None else None
    if params is not None and params.msgid:
        return params.msgid
    return request.headers.get("x-request-id") or request.headers.get("x-msgid")


def envelope(api_id: str, result: Any, *, msgid: str | None = None, status_code: int = 200,
             err: str | None = None, errmsg: str | None = None) -> Response:
    body = {
        "id": api_id,
        "ver": "v1",
        "ts": timestamp(),
        "params": {
            "resmsgid": message_id(),
            "msgid": msgid,
            "err": err,
            "status": "success" if err is None else "failed",
            "errmsg": errmsg,
        },
        "responseCode": RESPONSE_CODES.get(status_code, "CLIENT_ERROR" if status_code < 500 else "SERVER_ERROR"),
        "result": result,
    }
    if status_code == 503:
        return Response(orjson.dumps(body), status_code=503, media_type="application/json",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def error(api_id: str, status_code: int, code: str, message: str, field: str | None,
          msgid: str | None = None, errors: list[dict] | None = None) -> Response:
    result = {"field": field, "errors": errors or [{"field": field, "code": code, "message": message}]}
    return envelope(api_id, result, msgid=msgid, status_code=status_code, err=code, errmsg=message)

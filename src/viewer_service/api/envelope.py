"""The Sunbird response envelope: id, ver, ts, params{resmsgid,msgid,err,status,errmsg},
responseCode, result."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
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


# The bits uuid.UUID(int=..., version=4) sets and clears (RFC 4122 variant, version 4).
_V4_SET = (0x4 << 76) | (0x8000 << 48)
_V4_KEEP = ~((0xf000 << 64) | (0xc000 << 48)) & ((1 << 128) - 1)


def message_id() -> str:
    # A random (version 4) UUID without a system call per response.
    return uuid4_text(random.getrandbits(128))


def uuid4_text(bits: int) -> str:
    """str(uuid.UUID(int=bits, version=4)), formatted directly: a third of its cost."""
    h = "%032x" % (bits & _V4_KEEP | _V4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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

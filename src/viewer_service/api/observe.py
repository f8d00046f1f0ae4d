"""ASGI middleware: a request id for every request (X-Request-ID, in the response and in every
log line the request causes), request metrics per route template, and one access log line.

Never logs a body, a query string, a header value or a path (paths may hold learner ids): the
route template stands for the path."""

from __future__ import annotations

import logging
import random
import re
import time

from .. import metrics
from ..logs import ACCESS_LOGGER, request_id

access = logging.getLogger(ACCESS_LOGGER)
_ID_OK = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
HEADER = b"x-request-id"
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class Observe:
    def __init__(self, app, *, metrics_on: bool, access_log: bool):
        self.app = app
        self.metrics_on = metrics_on
        self.access_log = access_log
        self._children: dict = {}  # (method, route, status) -> (counter, histogram) children: no labels() per request

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = None
        for k, v in scope["headers"]:
            if k == HEADER:
                rid = v if _ID_OK.fullmatch(v) else None  # a caller's id is kept when it is sane
                break
        if rid is None:
            rid = b"%032x" % random.getrandbits(128)
        token = request_id.set(rid.decode())
        status = 500  # unless a response starts: an exception escaped to the server's error handler
        start = time.perf_counter()

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (HEADER, rid)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
            if self.metrics_on:
                key = (method, route, status)
                children = self._children.get(key)
                if children is None:
                    children = self._children[key] = (
                        metrics.HTTP_REQUESTS.labels(method, route, str(status)),
                        metrics.HTTP_LATENCY.labels(method, route, metrics.status_class(status)))
                children[0].inc()
                children[1].observe(duration)
            if self.access_log and access.isEnabledFor(logging.INFO):
                ms = round(duration * 1000, 2)
                access.info("%s %s %d %.2fms", method, route, status, ms,
                            extra={"method": method, "route": route, "status": status, "duration_ms": ms})
            request_id.reset(token)

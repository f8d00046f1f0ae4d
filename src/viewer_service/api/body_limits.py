"""ASGI middleware: refuses bodies over the size limit (413) and non-JSON bodies (415)
before any parsing happens."""

from __future__ import annotations

from .envelope import error
from .errors import API_IDS

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyLimits:
    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            return await self.app(scope, receive, send)
        length = ctype = None
        for k, v in scope["headers"]:
            if k == b"content-length":
                length = v
            elif k == b"content-type":
                ctype = v
        api = API_IDS.get(scope["path"], "api.viewer")
        if ctype is not None:
            media = ctype.split(b";", 1)[0].strip().lower()
            if media and media != b"application/json" and not media.endswith(b"+json"):
                return await error(api, 415, "UNSUPPORTED_MEDIA_TYPE", "send the body as application/json",
                                   "content-type")(scope, receive, send)
        def too_big():
            return error(api, 413, "BODY_TOO_LARGE", f"the body is larger than {self.max} bytes", "request")

        if length is not None:
            if not length.isdigit() or int(length) > self.max:
                return await too_big()(scope, receive, send)
            return await self.app(scope, receive, send)
        # No length given (chunked): read it here, within the limit, then replay it.
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > self.max:
                return await too_big()(scope, receive, send)
            if not msg.get("more_body"):
                break
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

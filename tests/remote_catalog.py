"""A Sunbird-like hierarchy endpoint for the catalog tests: a real HTTP server in a thread."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import orjson


class RemoteCatalog:
    """GET /hierarchy/<id> answers from `answers[id]`: a hierarchy dict (wrapped in Sunbird's
    `{"result": {"content": ...}}`), or `(status, raw bytes, delay seconds)`; else 404."""

    def __init__(self):
        self.answers: dict[str, object] = {}
        self.hits: list[str] = []
        remote = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                cid = unquote(self.path.removeprefix("/hierarchy/"))
                remote.hits.append(cid)
                answer = remote.answers.get(cid)
                if isinstance(answer, dict):
                    status, body, delay = 200, orjson.dumps({"responseCode": "OK", "result": {"content": answer}}), 0
                elif answer is None:
                    status, body, delay = 404, b'{"responseCode": "RESOURCE_NOT_FOUND"}', 0
                else:
                    status, body, delay = answer
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hierarchy"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

"""CPU cost per request of the request metrics and the access log (api/observe.py).

Calls the ASGI app directly (no network, no server, no load generator), GET /health, with the
Observe middleware absent, present with metrics and log off (request id only), metrics on, and
metrics plus the access log (text or JSON, written to a file as a server writes to its log).
Prints the median CPU microseconds per request over --repeats interleaved rounds, and each
configuration's extra cost over the bare app.

    .venv/bin/python bench/observe.py [--requests 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import statistics
import tempfile
import time

from viewer_service import logs
from viewer_service.api.app import create_app
from viewer_service.api.observe import Observe
from viewer_service.config import Settings

CONFIGS = {
    "bare (no middleware)": dict(observe=False),
    "request id only": dict(metrics=False, access_log=False),
    "metrics": dict(metrics=True, access_log=False),
    "metrics + text log": dict(metrics=True, access_log=True, fmt="text"),
    "metrics + JSON log": dict(metrics=True, access_log=True, fmt="json"),
}


def build(tmp: str, observe=True, metrics=True, access_log=True, fmt="text"):
    app = create_app(Settings(database_url=f"sqlite+aiosqlite:///{tmp}/x.db", metrics=metrics, access_log=access_log))
    if not observe:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not Observe]
    return app, fmt


async def run(app, n: int) -> float:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/health", "raw_path": b"/health", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        pass

    start = time.process_time()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.process_time() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log_file = f"{tmp}/server.log"
        apps = {name: build(tmp, **cfg) for name, cfg in CONFIGS.items()}
        times: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(a.repeats):
            for name, (app, fmt) in apps.items():
                cfg = logs.config(fmt)
                cfg["handlers"]["default"] = {"class": "logging.FileHandler", "filename": log_file,
                                              "formatter": "default", "filters": ["request_id"]}
                logging.config.dictConfig(cfg)
                times[name].append(asyncio.run(run(app, a.requests)))
        base = statistics.median(times["bare (no middleware)"])
        print(f"GET /health through the ASGI app, {a.requests} requests x {a.repeats} rounds, CPU µs per request:")
        print("| configuration | median µs/req | extra µs/req | rounds |")
        print("|---|---:|---:|---|")
        for name, ts in times.items():
            m = statistics.median(ts)
            print(f"| {name} | {m:.1f} | {m - base:+.1f} | {', '.join(f'{t:.1f}' for t in ts)} |")


if __name__ == "__main__":
    main()

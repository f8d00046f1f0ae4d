"""Logging: text or JSON lines (VIEWER_LOG_FORMAT), each carrying the id of the request it was
logged for (X-Request-ID), and one access line per request (VIEWER_ACCESS_LOG).

The configuration is a dictConfig that `serve` hands to uvicorn, so that every worker process
applies it (they are spawned: they do not inherit the parent's handlers)."""

from __future__ import annotations

import contextvars
import logging
import time

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# No format here uses the caller's file and line, the thread or the process: not collecting them
# makes each record several microseconds cheaper (the logging HOWTO's "Optimization").
logging._srcfile = None
logging.logThreads = False
logging.logProcesses = False
logging.logMultiprocessing = False

ACCESS_LOGGER = "viewer_service.access"


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (or "-") to every record: the id of the request being served, if any.
    Drops alembic's set-up chatter (seven INFO lines on every start), keeping the migrations it runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("alembic") and record.levelno < logging.WARNING \
                and not record.getMessage().startswith("Running "):
            return False
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or "-"
        return True


_second: list = [-1, ""]


def _utc_second(created: float) -> str:
    """"2026-11-29T23:48:59", formatted once per second, not once per line."""
    sec = int(created)
    if _second[0] != sec:
        _second[:] = [sec, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))]
    return _second[1]


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return f"{_utc_second(record.created)}.{int(record.msecs):03d}Z"


_FIELDS = ("method", "route", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, and the access fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": f"{_utc_second(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        for k in _FIELDS:
            v = getattr(record, k, None)
            if v is not None:
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def config(fmt: str = "text", level: str = "info") -> dict:
    """The dictConfig for the service's processes (uvicorn's own loggers included)."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "default",
               "filters": ["request_id"]}
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"default": formatter},
        "handlers": {"default": handler},
        "root": {"handlers": ["default"], "level": lvl},
        "loggers": {
            # uvicorn's own handlers would print the same line twice, in another format
            "uvicorn": {"handlers": [], "level": lvl, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": lvl, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }


def configure(fmt: str = "text", level: str = "info") -> None:
    import logging.config

    logging.config.dictConfig(config(fmt, level))

"""The dashboard: a small static app (viewer_service/dashboard/static) that calls the JSON API
with the caller's token. Every page path answers the same HTML; the app reads the path."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.responses import Response

from ..errors import NotFound

router = APIRouter(tags=["dashboard"])

STATIC = Path(__file__).resolve().parent.parent / "dashboard" / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".md": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".svg": "image/svg+xml"}
# Only what the package ships, from this origin; no inline script, no framing.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY"}


def _files() -> dict[str, Path]:
    """The shipped files by their URL name: nothing else under the directory is ever served."""
    return {p.relative_to(STATIC).as_posix(): p for p in STATIC.rglob("*") if p.is_file() and p.suffix in _TYPES}


_FILES = _files()


def _serve(name: str, cache: str) -> Response:
    path = _FILES.get(name)
    if path is None:
        raise NotFound("no such dashboard file", "path")
    return Response(path.read_bytes(), media_type=_TYPES[path.suffix], headers={**HEADERS, "Cache-Control": cache})


@router.get("/dashboard", include_in_schema=False)
@router.get("/dashboard/", include_in_schema=False)
@router.get("/dashboard/context/{contextId}", include_in_schema=False)
@router.get("/dashboard/learner/{userId}", include_in_schema=False)
async def page():
    return _serve("index.html", "no-cache")


@router.get("/dashboard/static/{name:path}", include_in_schema=False)
async def static(name: str):
    return _serve(name, "no-cache")

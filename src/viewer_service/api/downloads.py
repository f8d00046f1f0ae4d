"""Summary downloads: generate a learner's file, then fetch it by its url (docs/downloads.md)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse

from ..errors import DownloadNotFound
from ..services.downloads import file_name
from .parsing import path_id
from .envelope import envelope, msgid
from .state import served

router = APIRouter(prefix="/v1/summary/download", tags=["downloads"])

API_ID = "api.summary.download"
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
# Personal data: no shared cache keeps it, no browser guesses another type.
_HEADERS = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


@router.get("/{userId}", summary="Write the learner's summaries to a file (CSV or JSON); answers its url")
async def create_download(request: Request, userId: str,
                          fmt: str = Query("json", alias="format", description="csv or json")):
    app = served(request)
    user = app.user_for(request, path_id(userId, "userId"))
    url = await app.downloads.create(user, fmt)
    return envelope(API_ID, {"url": url}, msgid=msgid(request))


@router.get("/{userId}/files/{token}", summary="The generated file, until it expires",
            response_class=FileResponse)
async def fetch_download(request: Request, userId: str, token: str):
    app = served(request)
    user = app.user_for(request, path_id(userId, "userId"))
    if len(token) > 64:  # longer than any token: never stored
        raise DownloadNotFound("no such download, or it has expired", "token")
    path, fmt = await app.downloads.open(user, token)
    return FileResponse(path, media_type=MEDIA_TYPES[fmt], filename=file_name(user, fmt), headers=_HEADERS)

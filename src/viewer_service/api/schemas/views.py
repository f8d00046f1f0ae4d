"""Request bodies of the view endpoints (api/views.py)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import AliasChoices, Field, ValidationInfo, field_validator

from .common import Body, EpochMs, Envelope, Id, number

MAX_DETAILS_BYTES = 65_536  # Settings.max_progress_details_bytes's default


class ViewKeys(Body):
    userId: Id | None = None
    contentId: Id
    collectionId: Id | None = None
    contextId: Id | None = None
    # The client's time of the event, epoch ms (or ISO-8601). Offline clients sync late;
    # this, not arrival, orders their events.
    ts: EpochMs = Field(default=None, description="client time, epoch milliseconds")


def check_details(v: Any, limit: int) -> Any:
    """progressDetails within `limit` bytes as JSON (VIEWER_MAX_PROGRESS_DETAILS_BYTES)."""
    if v is None:
        return v
    # Numbers beyond 64 bits and NUL characters never get here (api/parsing.py refuses them).
    if len(orjson.dumps(v)) > limit:
        raise ValueError(f"progressDetails is larger than {limit} bytes")
    return v


def _details(cls, v: Any, info: ValidationInfo) -> Any:
    # The context is the serving instance's Settings (api/parsing.py); none outside a request.
    return check_details(v, info.context.max_progress_details_bytes if info.context else MAX_DETAILS_BYTES)


class StartBody(ViewKeys):
    pass


class UpdateBody(ViewKeys):
    progressDetails: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("progressDetails", "progressdetails"))
    progress: number(int, ge=0, le=100) | None = None
    timespent: number(float, ge=0) | None = Field(default=None, description="seconds spent since the last update")

    _check_details = field_validator("progressDetails")(classmethod(_details))


class EndBody(ViewKeys):
    progressDetails: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("progressDetails", "progressdetails"))
    timespent: number(float, ge=0) | None = None

    _check_details = field_validator("progressDetails")(classmethod(_details))


class ReadBody(Body):
    userId: Id | None = None
    contentId: list[Id] | Id | None = Field(default=None, description="one id or a list; omit to read the whole scope")
    collectionId: Id | None = None
    contextId: Id | None = None
    fields: list[Literal["provenance"]] | None = Field(
        default=None, max_length=4, description='extra fields per content: "provenance"')

    @field_validator("contentId")
    @classmethod
    def _list(cls, v):
        if isinstance(v, str):
            return [v]
        if v is not None and not 1 <= len(v) <= 1000:
            raise ValueError("contentId takes 1 to 1000 ids")
        return v


class StartRequest(Envelope[StartBody]):
    pass


class UpdateRequest(Envelope[UpdateBody]):
    pass


class EndRequest(Envelope[EndBody]):
    pass


class ReadRequest(Envelope[ReadBody]):
    pass

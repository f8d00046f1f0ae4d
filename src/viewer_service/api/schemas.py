"""Request bodies. Every request comes in the `{"request": {...}}` wrapper; the optional
`params.msgid` is echoed back."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Generic, Literal, TypeVar

import orjson
from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError

# Ids: 1..256 characters, no control characters (they would corrupt CSV exports and cache keys).
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
MAX_DETAILS_BYTES = 65_536


def _json_number(v: Any) -> Any:
    # Pydantic's lax mode would store `true` as 1 and "55" as 55; a number must be a JSON number.
    if isinstance(v, (bool, str)):
        raise PydanticCustomError("number_type", "must be a JSON number, not a {kind}",
                                  {"kind": "boolean" if isinstance(v, bool) else "string"})
    return v


def number(kind: type, **limits) -> Any:
    """A JSON number field; limits go before the check so the JSON schema shows them."""
    return Annotated[kind, Field(**limits), BeforeValidator(_json_number)]


Int = number(int)
Float = number(float)


def _text(v: Any) -> Any:
    # A number is epoch milliseconds (the Int branch); pydantic would also read one as seconds.
    if not isinstance(v, str):
        raise PydanticCustomError("datetime_type", "a time is epoch milliseconds or an ISO-8601 string")
    return v


IsoDateTime = Annotated[datetime, BeforeValidator(_text)]
IsoDate = Annotated[date, BeforeValidator(_text)]


class Params(BaseModel):
    msgid: str | None = Field(default=None, max_length=256)


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    id: str | None = None
    ver: str | None = None
    params: Params | None = None
    request: T


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _to_ms(v: Any) -> Any:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return int(v.timestamp() * 1000)
    return v


class ViewKeys(_Body):
    userId: Id | None = None
    contentId: Id
    collectionId: Id | None = None
    contextId: Id | None = None
    # The client's time of the event, epoch ms (or ISO-8601). Offline clients sync late;
    # this, not arrival, orders their events.
    ts: Int | IsoDateTime | None = Field(default=None, description="client time, epoch milliseconds")

    @field_validator("ts")
    @classmethod
    def _ts(cls, v):
        return _to_ms(v)


def _details(v: Any) -> Any:
    if v is None:
        return v
    # Numbers beyond 64 bits and NUL characters never get here (body.parse refuses them).
    if len(orjson.dumps(v)) > MAX_DETAILS_BYTES:
        raise ValueError(f"progressDetails is larger than {MAX_DETAILS_BYTES} bytes")
    return v


class StartBody(ViewKeys):
    pass


class UpdateBody(ViewKeys):
    progressDetails: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("progressDetails", "progressdetails"))
    progress: number(int, ge=0, le=100) | None = None
    timespent: number(float, ge=0) | None = Field(default=None, description="seconds spent since the last update")

    _check_details = field_validator("progressDetails")(classmethod(lambda cls, v: _details(v)))


class EndBody(ViewKeys):
    progressDetails: dict[str, Any] | None = Field(
        default=None, validation_alias=AliasChoices("progressDetails", "progressdetails"))
    timespent: number(float, ge=0) | None = None

    _check_details = field_validator("progressDetails")(classmethod(lambda cls, v: _details(v)))


class ReadBody(_Body):
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

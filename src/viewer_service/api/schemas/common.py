"""What every request body shares: the `{"request": {...}}` wrapper whose optional
`params.msgid` is echoed back, ids, JSON numbers and client times."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from pydantic_core import PydanticCustomError

# Ids: 1..256 characters, no control characters (they would corrupt CSV exports and cache keys).
Id = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


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


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


def to_ms(v: Any) -> Any:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return int(v.timestamp() * 1000)
    return v


# An event's time: epoch ms, or an ISO-8601 time read as epoch ms (UTC unless it says otherwise).
EpochMs = Annotated[Int | IsoDateTime | None, AfterValidator(to_ms)]

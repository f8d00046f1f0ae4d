"""Request bodies of the context, enrolment and certificate endpoints (api/enrolments.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator
from typing_extensions import Annotated

from .common import Envelope, Id, Int, IsoDate, IsoDateTime, number, to_ms


def _when(v: Any) -> Any:
    if isinstance(v, date) and not isinstance(v, datetime):
        v = datetime.combine(v, time(), timezone.utc)
    return to_ms(v)


When = Int | IsoDateTime | IsoDate


class CarryForward(BaseModel):
    """This context's carry-forward rule; it replaces the instance default whole (docs/modes.md)."""
    model_config = ConfigDict(extra="forbid")
    mode: Literal["none", "copy-content", "copy-collection", "move"]
    windowDays: number(int, ge=0, le=36_500) | None = Field(default=None,
                                   description="completed at most this many days before the enrolment")
    withinContextDates: StrictBool = Field(default=False, description="completed between the context's start and end dates")


class ContextBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # kept as sent (carry-forward rules live here)
    type: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] = Field(
        description='"batch", "program", ...')
    collectionIds: list[Id] = Field(min_length=1, max_length=1000)
    startDate: When | None = Field(default=None, description="epoch ms, or an ISO-8601 date or time")
    endDate: When | None = None
    carryForward: CarryForward | None = None

    _dates = field_validator("startDate", "endDate")(classmethod(lambda cls, v: _when(v)))


class ScopeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    userId: Id | None = None
    collectionId: Id
    contextId: Id | None = Field(default=None, description="defaults to the collectionId")


class EnrolBody(ScopeBody):
    enrolledDate: When | None = Field(default=None, description="epoch ms; defaults to now")

    _dates = field_validator("enrolledDate")(classmethod(lambda cls, v: _when(v)))


class Certificate(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Id
    name: str | None = Field(default=None, max_length=1024)
    token: str | None = Field(default=None, max_length=1024)
    lastIssuedOn: Int | str | None = None


class CertificateBody(ScopeBody):
    certificate: Certificate


class ContextRequest(Envelope[ContextBody]):
    pass


class EnrolRequest(Envelope[EnrolBody]):
    pass


class ScopeRequest(Envelope[ScopeBody]):
    pass


class CertificateRequest(Envelope[CertificateBody]):
    pass

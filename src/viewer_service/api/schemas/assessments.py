"""Request bodies of the assessment endpoints (api/assessments.py). The ASSESS events themselves are checked by the
rules (domain/assessments.py), which name the offending field."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, Field, StringConstraints

from .common import Body, EpochMs, Envelope, Id
from .views import ReadBody

_collection = AliasChoices("collectionId", "courseId")  # Sunbird's lms names too
_context = AliasChoices("contextId", "batchId")


class _AttemptKeys(Body):
    userId: Id | None = None
    contentId: Id | None = None
    collectionId: Id | None = Field(default=None, validation_alias=_collection)
    contextId: Id | None = Field(default=None, validation_alias=_context)
    attemptId: Id | None = None
    assessmentTs: EpochMs = Field(default=None, description="the attempt's time, epoch ms")


class AttemptBody(_AttemptKeys):
    """Sunbird's attempt object: its ids (defaulting to the request's) and its ASSESS events."""
    events: list[Any] = Field(min_length=1)


class SubmitBody(_AttemptKeys):
    # Either the ASSESS events of one attempt (the seed's form) or attempt objects (Sunbird's).
    assessments: list[dict[str, Any]] = Field(min_length=1)


class AssessmentReadBody(ReadBody):
    fields: list[Annotated[str, StringConstraints(max_length=64)]] | None = Field(
        default=None, max_length=16, description='["attempts"]: also each attempt')


class SubmitRequest(Envelope[SubmitBody]):
    pass


class AssessmentReadRequest(Envelope[AssessmentReadBody]):
    pass

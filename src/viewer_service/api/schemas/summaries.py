"""Request bodies of the summary endpoints (api/summaries.py)."""

from __future__ import annotations

from .common import Envelope
from .enrolments import ScopeBody


class EraseBody(ScopeBody):
    """The enrolment to erase; `userId`, if given, must be the path's."""


class EraseRequest(Envelope[EraseBody]):
    pass

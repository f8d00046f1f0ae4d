"""The enrolment scope a request names (shared by the enrolment and summary routers)."""

from __future__ import annotations

from fastapi import Request

from ..domain.scope import Scope
from .schemas.enrolments import ScopeBody
from .state import served


def scope_of(request: Request, b: ScopeBody) -> Scope:
    """The caller's (or, when trusted, the body's) user in the named collection and context; the
    context defaults to the collection."""
    app = served(request)
    user = app.user_for(request, b.userId)
    return Scope(user, b.collectionId, b.contextId or b.collectionId)

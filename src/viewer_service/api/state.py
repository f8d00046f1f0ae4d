"""What a request is served with: the services bootstrap.py built, and who is asking."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request

from ..bootstrap import Services
from ..errors import Forbidden
from .auth import Authenticator, resolve_user


@dataclass
class ServiceApp(Services):
    auth: Authenticator = field(default=None)  # type: ignore[assignment] - set from the settings

    def __post_init__(self) -> None:
        if self.auth is None:
            self.auth = Authenticator(self.settings)

    def require_privileged(self, request: Request, why: str) -> None:
        principal = self.auth.authenticate(request.headers)  # 401 without a valid token (VIEWER_AUTH=jwt)
        if self.settings.auth != "none" and not principal.is_privileged:
            raise Forbidden(why, "request")

    def user_for(self, request: Request, body_user_id: str | None) -> str:
        if self.settings.auth == "none" and body_user_id:
            return body_user_id  # trusted: a gateway authenticated the caller
        principal = self.auth.authenticate(request.headers)
        return resolve_user(principal, body_user_id, self.settings.auth)


def served(request: Request) -> ServiceApp:
    """The services of the app serving `request` (set by api/app.py's lifespan)."""
    return request.app.state.app

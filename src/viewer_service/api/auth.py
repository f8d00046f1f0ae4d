"""Who is calling, and for which learner. Pure logic over headers and settings (no FastAPI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from ..config import Settings
from ..errors import Forbidden, MissingField, Unauthenticated

LEEWAY_SECONDS = 30
TOKEN_HEADER = "x-authenticated-user-token"
MANAGED_HEADER = "x-authenticated-for"  # Sunbird: a managed user's token, naming its parent


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str | None
    roles: frozenset[str]
    is_privileged: bool  # an admin or service role: may act for any learner


def _load_keys(spec: str | None) -> list:
    """RS256 public keys: PEM text, or comma-separated paths to PEM files."""
    if not spec:
        return []
    pems = [spec] if "-----BEGIN" in spec else [Path(p.strip()).read_text() for p in spec.split(",") if p.strip()]
    return [load_pem_public_key(pem.encode()) for pem in pems]


def _roles(claims: dict) -> frozenset[str]:
    roles: set[str] = set()
    realm = claims.get("realm_access")
    for value in (claims.get("roles"), claims.get("role"), realm.get("roles") if isinstance(realm, dict) else None):
        if isinstance(value, str):
            roles.update(r.strip() for r in value.split(",") if r.strip())
        elif isinstance(value, list):
            roles.update(r for r in value if isinstance(r, str))
    return frozenset(roles)


def subject_user(sub: str) -> str:
    """Sunbird's federated ids look like f:<provider>:<id>; the learner is <id>."""
    if sub.startswith("f:") and sub.count(":") >= 2:
        return sub.split(":", 2)[2]
    return sub


class Authenticator:
    def __init__(self, settings: Settings):
        self.mode = settings.auth
        self.admin_roles = settings.admin_role_set
        self.audience = settings.jwt_audience
        self.secret = settings.jwt_secret
        self.public_keys = _load_keys(settings.jwt_public_keys)
        if self.mode == "jwt" and not (self.secret or self.public_keys):
            raise ValueError("VIEWER_AUTH=jwt needs VIEWER_JWT_SECRET or VIEWER_JWT_PUBLIC_KEYS")

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if self.mode == "none":
            return Principal(None, frozenset(), False)
        if not hasattr(headers, "getlist"):  # Starlette's headers already ignore case; a plain dict does not
            headers = {k.lower(): v for k, v in headers.items()}
        token = headers.get(TOKEN_HEADER)
        if not token:
            auth = headers.get("authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
        if not token:
            raise Unauthenticated("a user token is required", TOKEN_HEADER, "UNAUTHORIZED")
        claims = self._verify(token)
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise Unauthenticated("the token has no subject", TOKEN_HEADER, "TOKEN_INVALID")
        roles = _roles(claims)
        return Principal(subject_user(sub), roles, bool(roles & self.admin_roles))

    def managed_user(self, headers: Mapping[str, str], principal: Principal) -> str | None:
        """The managed user the caller acts for (Sunbird's requestedFor), from a token in
        x-authenticated-for whose parentId is the caller; None without that header."""
        token = headers.get(MANAGED_HEADER) if self.mode == "jwt" else None
        if not token:
            return None
        claims = self._verify(token)
        parent, sub = claims.get("parentId"), claims.get("sub")
        if not isinstance(parent, str) or subject_user(parent) != principal.user_id:
            raise Unauthenticated("the managed-user token does not name this user as its parent",
                                  MANAGED_HEADER, "UNAUTHORIZED")
        return subject_user(sub)

    def _verify(self, token: str) -> dict:
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthenticated("the token is malformed", TOKEN_HEADER, "TOKEN_INVALID") from None
        # Only algorithms with a configured key: never "none", never HS256 keyed by an RSA key.
        if alg == "HS256" and self.secret:
            keys = [self.secret]
        elif alg == "RS256" and self.public_keys:
            keys = self.public_keys
        else:
            raise Unauthenticated(f"tokens signed with {alg!r} are not accepted", TOKEN_HEADER, "TOKEN_INVALID")
        options = {"require": ["exp", "sub"], "verify_aud": self.audience is not None}
        last: jwt.PyJWTError | None = None
        for key in keys:
            try:
                return jwt.decode(token, key, algorithms=[alg], audience=self.audience, leeway=LEEWAY_SECONDS,
                                  options=options)
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the token has expired", TOKEN_HEADER, "TOKEN_EXPIRED") from None
            except jwt.InvalidSignatureError as e:
                last = e  # maybe another of the configured keys
            except jwt.PyJWTError as e:
                raise Unauthenticated(f"the token is invalid: {e}", TOKEN_HEADER, "TOKEN_INVALID") from None
        raise Unauthenticated(f"the token is invalid: {last}", TOKEN_HEADER, "TOKEN_INVALID")


def resolve_user(principal: Principal, body_user_id: str | None, auth_mode: str) -> str:
    """The learner a request acts for."""
    if auth_mode == "none":
        if not body_user_id:
            raise MissingField("request.userId is required", "request.userId")
        return body_user_id
    if body_user_id is None or body_user_id == principal.user_id:
        return principal.user_id
    check_access(principal, body_user_id, auth_mode)
    return body_user_id


def check_access(principal: Principal, target_user_id: str, auth_mode: str) -> None:
    """A learner may only touch their own data; admin and service roles may touch anyone's."""
    if auth_mode == "none" or principal.is_privileged or principal.user_id == target_user_id:
        return
    raise Forbidden("a learner may only access their own data", "request.userId")

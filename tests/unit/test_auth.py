"""Token verification and the learner-only rule, without I/O."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from viewer_service.api.auth import Authenticator, Principal, check_access, resolve_user
from viewer_service.api.errors import http_status
from viewer_service.errors import AuthError, MissingField
from viewer_service.config import Settings

SECRET = "unit-test-secret-of-reasonable-length-0123"


def rsa_pair():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, pub.decode()


def claims(sub="u1", **kw):
    return {"sub": sub, "exp": int(time.time()) + 300, **kw}


def hs(**kw):
    return {"x-authenticated-user-token": jwt.encode(claims(**kw), SECRET, algorithm="HS256")}


def reject(auth, headers, status=401, code="TOKEN_INVALID"):
    with pytest.raises(AuthError) as e:
        auth.authenticate(headers)
    assert (http_status(e.value), e.value.code) == (status, code)


def test_hs256_and_bearer():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    assert auth.authenticate(hs()).user_id == "u1"
    token = hs()["x-authenticated-user-token"]
    assert auth.authenticate({"authorization": f"Bearer {token}"}).user_id == "u1"


def test_rs256_with_several_keys(tmp_path):
    (k1, p1), (k2, p2) = rsa_pair(), rsa_pair()
    (tmp_path / "a.pem").write_text(p1)
    (tmp_path / "b.pem").write_text(p2)
    auth = Authenticator(Settings(auth="jwt", jwt_public_keys=f"{tmp_path / 'a.pem'},{tmp_path / 'b.pem'}"))
    token = jwt.encode(claims(), k2, algorithm="RS256")
    assert auth.authenticate({"x-authenticated-user-token": token}).user_id == "u1"
    other, _ = rsa_pair()
    reject(auth, {"x-authenticated-user-token": jwt.encode(claims(), other, algorithm="RS256")})


def test_algorithm_confusion_and_none_are_refused():
    key, pub = rsa_pair()
    auth = Authenticator(Settings(auth="jwt", jwt_public_keys=pub))
    # An HS256 token keyed with the public PEM (PyJWT itself refuses to make one).
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims()).encode())
    sig = b64(hmac.new(pub.encode(), head + b"." + body, hashlib.sha256).digest())
    forged = (head + b"." + body + b"." + sig).decode()
    reject(auth, {"x-authenticated-user-token": forged})
    unsigned = (b64(json.dumps({"alg": "none"}).encode()) + b"." + body + b".").decode()
    reject(auth, {"x-authenticated-user-token": unsigned})


def test_missing_expired_and_malformed_tokens():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    reject(auth, {}, 401, "UNAUTHORIZED")
    reject(auth, hs(exp=int(time.time()) - 120), 401, "TOKEN_EXPIRED")
    reject(auth, {"x-authenticated-user-token": "not.a.token"})
    no_sub = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    reject(auth, {"x-authenticated-user-token": no_sub})


def test_audience_is_checked_when_configured():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET, jwt_audience="viewer"))
    assert auth.authenticate(hs(aud="viewer")).user_id == "u1"
    reject(auth, hs(aud="someone-else"))


def test_federated_subject_and_roles():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    p = auth.authenticate(hs(sub="f:5a8a3f2b:learner-9"))
    assert (p.user_id, p.is_privileged) == ("learner-9", False)
    for extra in ({"roles": ["admin"]}, {"role": "service"}, {"realm_access": {"roles": ["x", "admin"]}},
                  {"roles": "reader,service"}):
        assert auth.authenticate(hs(**extra)).is_privileged, extra
    assert not auth.authenticate(hs(roles=["reader"])).is_privileged
    assert not auth.authenticate(hs(realm_access=["admin"], role=5)).is_privileged  # odd shapes: no roles, no crash


def test_header_names_ignore_case():
    auth = Authenticator(Settings(auth="jwt", jwt_secret=SECRET))
    token = hs()["x-authenticated-user-token"]
    assert auth.authenticate({"X-Authenticated-User-Token": token}).user_id == "u1"
    assert auth.authenticate({"Authorization": f"bearer {token}"}).user_id == "u1"


def test_resolve_user_rules():
    me = Principal("u1", frozenset(), False)
    admin = Principal("ops", frozenset({"admin"}), True)
    assert resolve_user(me, None, "jwt") == "u1"
    assert resolve_user(me, "u1", "jwt") == "u1"
    with pytest.raises(AuthError) as e:
        resolve_user(me, "u2", "jwt")
    assert (http_status(e.value), e.value.field) == (403, "request.userId")
    assert resolve_user(admin, "u2", "jwt") == "u2"
    assert resolve_user(Principal(None, frozenset(), False), "u7", "none") == "u7"
    with pytest.raises(MissingField) as e:
        resolve_user(Principal(None, frozenset(), False), None, "none")
    assert (http_status(e.value), e.value.code) == (400, "MISSING_FIELD")


def test_check_access_for_path_user_ids():
    check_access(Principal("u1", frozenset(), False), "u1", "jwt")
    check_access(Principal("ops", frozenset({"admin"}), True), "u2", "jwt")
    check_access(Principal(None, frozenset(), False), "anyone", "none")
    with pytest.raises(AuthError) as e:
        check_access(Principal("u1", frozenset(), False), "u2", "jwt")
    assert http_status(e.value) == 403


def test_jwt_mode_needs_a_key():
    with pytest.raises(ValueError):
        Authenticator(Settings(auth="jwt"))

"""Learners read and write only their own data (VIEWER_AUTH=jwt), through HTTP."""

import time

import jwt
import pytest

SECRET = "test-secret-that-is-long-enough-for-hs256"
pytestmark = pytest.mark.settings(auth="jwt", jwt_secret=SECRET)


def token(sub: str, **claims) -> dict:
    body = {"sub": sub, "exp": int(time.time()) + 600, **claims}
    return {"x-authenticated-user-token": jwt.encode(body, SECRET, algorithm="HS256")}


async def test_the_token_user_is_the_learner(client, user):
    r = await client.post("/v1/view/start", json={"request": {"contentId": "c"}}, headers=token(f"f:provider:{user}"))
    assert r.status_code == 200
    r = await client.post("/v1/view/read", json={"request": {"contentId": ["c"]}},
                          headers={"authorization": "Bearer " + token(user)["x-authenticated-user-token"]})
    assert r.json()["result"]["userId"] == user and r.json()["result"]["contents"][0]["status"] == 1


async def test_no_token_or_a_bad_one_is_401(client, user):
    r = await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c"}})
    assert r.status_code == 401 and r.json()["responseCode"] == "UNAUTHORIZED"
    bad = {"x-authenticated-user-token": jwt.encode({"sub": user}, "another-secret-entirely-0123456789", algorithm="HS256")}
    r = await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c"}}, headers=bad)
    assert r.status_code == 401 and r.json()["params"]["err"] == "TOKEN_INVALID"
    expired = token(user, exp=int(time.time()) - 3600)
    r = await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c"}}, headers=expired)
    assert r.status_code == 401 and r.json()["params"]["err"] == "TOKEN_EXPIRED"


async def test_another_learners_data_is_403_unless_admin_or_service(client, user):
    other = user + "-other"
    await client.post("/v1/view/start", json={"request": {"contentId": "c"}}, headers=token(other))
    for op in ("start", "read"):
        body = {"userId": other, "contentId": "c" if op == "start" else ["c"]}
        r = await client.post(f"/v1/view/{op}", json={"request": body}, headers=token(user))
        assert r.status_code == 403 and r.json()["params"]["err"] == "FORBIDDEN"
        assert r.json()["result"]["field"] == "request.userId"
    r = await client.post("/v1/view/read", json={"request": {"userId": other, "contentId": ["c"]}},
                          headers=token("support-1", roles=["admin"]))
    assert r.status_code == 200 and r.json()["result"]["contents"][0]["status"] == 1
    r = await client.post("/v1/view/end", json={"request": {"userId": other, "contentId": "c"}},
                          headers=token("lms", realm_access={"roles": ["service"]}))
    assert r.status_code == 200

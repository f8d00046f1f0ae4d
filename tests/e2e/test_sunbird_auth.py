"""lms-service's routes under VIEWER_AUTH=jwt (docs/sunbird.md): public routes act for the token's
user, or the managed user it names; /private/ routes trust the body, and can be turned off."""

from __future__ import annotations

import time

import jwt
import pytest

from helpers import now_ms
from test_sunbird import DAY, uid

SECRET = "test-secret-that-is-long-enough-for-hs256"
pytestmark = pytest.mark.settings(auth="jwt", jwt_secret=SECRET)


def token(sub: str, **claims) -> str:
    # Made at import (ADMIN below): valid for a day, however long the suite runs.
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 86_400, **claims}, SECRET, algorithm="HS256")


def as_user(sub: str, **claims) -> dict:
    return {"x-authenticated-user-token": token(sub, **claims)}


ADMIN = as_user("admin-1", roles=["admin"])


@pytest.fixture
async def course(client):
    c, b = uid("do_course"), uid("batch")
    r = await client.put(f"/v1/context/{b}", json={"request": {"type": "batch", "collectionIds": [c],
                                                               "startDate": now_ms() - DAY}}, headers=ADMIN)
    assert r.status_code == 200, r.json()
    return c, b


def content(c, b, cid="do_1", **extra):
    return {"contentId": cid, "courseId": c, "batchId": b, "status": 2, **extra}


async def update(client, headers, **request):
    r = await client.patch("/v1/content/state/update", json={"request": request}, headers=headers)
    return r.status_code, r.json()


async def state(client, headers, path="/v1/content/state/read", **request):
    r = await client.post(path, json={"request": request}, headers=headers)
    return r.status_code, r.json()


async def test_public_routes_act_for_the_token_user(client, user, course):
    c, b = course
    st, body = await update(client, as_user(user), contents=[content(c, b)])
    assert st == 200 and body["result"] == {"do_1": "SUCCESS"}, body
    st, body = await state(client, as_user(f"f:provider:{user}"), courseId=c, batchId=b)
    assert st == 200 and [x["contentId"] for x in body["result"]["contentList"]] == ["do_1"]
    # The token's user, not anyone else's data: another learner reads nothing of it.
    st, body = await state(client, as_user(user + "-x"), courseId=c, batchId=b)
    assert st == 200 and body["result"]["contentList"] == []


async def test_another_user_is_403_unless_admin_or_service(client, user, course):
    c, b = course
    other = user + "-other"
    st, body = await update(client, as_user(user), userId=other, contents=[content(c, b)])
    assert st == 403 and body["params"]["err"] == "FORBIDDEN" and body["result"]["field"] == "request.userId"
    st, body = await update(client, as_user(user), contents=[content(c, b, userId=other)])
    assert st == 403 and body["result"]["field"] == "request.contents.0.userId"
    st, body = await state(client, as_user(user), userId=other, courseId=c, batchId=b)
    assert st == 403
    r = await client.get(f"/v1/user/courses/list/{other}", headers=as_user(user))
    assert r.status_code == 403
    # Nothing was written for the other learner; a service role may write and read for them.
    st, body = await state(client, ADMIN, userId=other, courseId=c, batchId=b)
    assert st == 200 and body["result"]["contentList"] == []
    st, body = await update(client, as_user("lms", roles=["service"]), userId=other, contents=[content(c, b)])
    assert st == 200, body
    st, body = await state(client, ADMIN, userId=other, courseId=c, batchId=b)
    assert [x["contentId"] for x in body["result"]["contentList"]] == ["do_1"]


async def test_a_managed_user_named_by_the_token(client, user, course):
    c, b = course
    child = user + "-child"
    headers = {**as_user(user), "x-authenticated-for": token(child, parentId=user)}
    st, body = await update(client, headers, contents=[content(c, b)])
    assert st == 200, body
    st, body = await update(client, headers, userId=child, contents=[content(c, b, "do_2", userId=child)])
    assert st == 200, body
    st, body = await state(client, as_user(child), courseId=c, batchId=b)
    assert sorted(x["contentId"] for x in body["result"]["contentList"]) == ["do_1", "do_2"]
    st, body = await state(client, as_user(user), courseId=c, batchId=b)
    assert body["result"]["contentList"] == []  # written for the child, not the parent
    # A managed-user token whose parent is someone else is refused.
    bad = {**as_user(user), "x-authenticated-for": token(child, parentId="someone-else")}
    st, body = await update(client, bad, contents=[content(c, b)])
    assert st == 401 and body["responseCode"] == "UNAUTHORIZED"


async def test_no_token_is_401_on_public_routes_and_private_routes_trust_the_body(client, user, course):
    c, b = course
    st, body = await update(client, {}, userId=user, contents=[content(c, b)])
    assert st == 401
    r = await client.get(f"/v1/user/courses/list/{user}")
    assert r.status_code == 401
    st, body = await update(client, as_user(user), contents=[content(c, b)])
    assert st == 200
    st, body = await state(client, {}, "/private/v1/content/state/read", userId=user, courseId=c, batchId=b)
    assert st == 200 and [x["contentId"] for x in body["result"]["contentList"]] == ["do_1"]
    r = await client.post("/private/v2/user/courses/list", json={"request": {"userId": user}})
    assert r.status_code == 200 and r.json()["result"]["courses"] == []


@pytest.mark.settings(auth="jwt", jwt_secret=SECRET, private_routes=False)
async def test_private_routes_turned_off(client, user, course):
    c, b = course
    for method, path, body in (("POST", "/private/v1/content/state/read", {"userId": user, "courseId": c, "batchId": b}),
                               ("POST", "/private/v2/user/courses/list", {"userId": user}),
                               ("GET", f"/private/v1/user/courses/list/{user}", None)):
        r = await client.request(method, path, json={"request": body} if body else None)
        assert r.status_code == 404 and r.json()["params"]["err"] == "NOT_FOUND", path
    # The public routes still answer.
    st, _ = await state(client, as_user(user), courseId=c, batchId=b)
    assert st == 200

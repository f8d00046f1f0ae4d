"""Bad input gets a 4xx in the envelope with a code and the field; nothing is written."""

import pytest

from helpers import call, db_rows, now_ms


def _err(r):
    body = r.json()
    assert body["params"]["status"] == "failed" and body["responseCode"] != "OK"
    return r.status_code, body["params"]["err"], body["result"]["field"]


@pytest.mark.parametrize(
    "request_body, expected",
    [
        ({}, (400, "MISSING_FIELD", "request.contentId")),
        ({"contentId": ""}, (400, "EMPTY_FIELD", "request.contentId")),
        ({"contentId": 5}, (400, "INVALID_TYPE", "request.contentId")),
        ({"contentId": ["a"]}, (400, "INVALID_TYPE", "request.contentId")),
        ({"contentId": "x" * 257}, (400, "FIELD_TOO_LONG", "request.contentId")),
        ({"contentId": "ok", "collectionId": "y" * 257}, (400, "FIELD_TOO_LONG", "request.collectionId")),
        ({"contentId": "bad\nid"}, (400, "INVALID_VALUE", "request.contentId")),
        ({"contentId": "c", "userId": 42}, (400, "INVALID_TYPE", "request.userId")),
        ({"contentId": "c", "ts": "yesterday"}, (400, "INVALID_TYPE", "request.ts")),
        ({"contentId": "c", "ts": 1_000_000}, (400, "INVALID_REQUEST", "request.ts")),
    ],
)
async def test_bad_start_requests(client, service, user, request_body, expected):
    r = await client.post("/v1/view/start", json={"request": {"userId": user, **request_body}})
    assert _err(r) == expected
    assert await db_rows(service, user) == []


async def test_future_timestamps_beyond_the_skew_are_rejected(client, service, user):
    status, body = await call(client, "start", userId=user, contentId="c", ts=now_ms() + 3_600_000)
    assert (status, body["result"]["field"]) == (400, "request.ts")
    assert await db_rows(service, user) == []
    status, _ = await call(client, "start", userId=user, contentId="c", ts=now_ms() + 10_000)  # small skew is fine
    assert status == 200


@pytest.mark.parametrize(
    "fields, expected",
    [
        ({"progress": 101}, (400, "OUT_OF_RANGE", "request.progress")),
        ({"progress": "half"}, (400, "INVALID_TYPE", "request.progress")),
        ({"timespent": -1}, (400, "OUT_OF_RANGE", "request.timespent")),
        ({"timespent": 10**9}, (400, "INVALID_REQUEST", "request.timespent")),
        ({"progressDetails": "not an object"}, (400, "INVALID_TYPE", "request.progressDetails")),
        ({"progressDetails": {"blob": "x" * 70_000}}, (400, "INVALID_VALUE", "request.progressDetails")),
    ],
)
async def test_bad_update_requests_change_nothing(client, service, user, fields, expected):
    await call(client, "start", userId=user, contentId="c")
    before = await db_rows(service, user)
    r = await client.post("/v1/view/update", json={"request": {"userId": user, "contentId": "c", **fields}})
    assert _err(r) == expected
    assert await db_rows(service, user) == before


async def test_malformed_json(client):
    r = await client.post("/v1/view/start", content=b'{"request": {"contentId": ', headers={"content-type": "application/json"})
    assert _err(r) == (400, "INVALID_JSON", "request")


async def test_body_must_be_an_object_with_request(client):
    r = await client.post("/v1/view/start", json=[1, 2])
    assert r.status_code == 400 and r.json()["params"]["err"] == "INVALID_TYPE"
    r = await client.post("/v1/view/start", json={"contentId": "c"})
    assert _err(r) == (400, "MISSING_FIELD", "request")


async def test_non_json_content_type(client):
    r = await client.post("/v1/view/start", content=b"contentId=c", headers={"content-type": "application/x-www-form-urlencoded"})
    assert _err(r) == (415, "UNSUPPORTED_MEDIA_TYPE", "content-type")


async def test_bodies_over_one_megabyte(client, service, user):
    big = b'{"request": {"userId": "%s", "contentId": "c", "pad": "%s"}}' % (user.encode(), b"x" * 1_100_000)
    r = await client.post("/v1/view/start", content=big, headers={"content-type": "application/json"})
    assert _err(r) == (413, "BODY_TOO_LARGE", "request")

    async def chunks():  # no content-length: streamed
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    r = await client.post("/v1/view/start", content=chunks(), headers={"content-type": "application/json"})
    assert _err(r) == (413, "BODY_TOO_LARGE", "request")
    assert await db_rows(service, user) == []


async def test_read_needs_a_content_or_a_collection(client, user):
    r = await client.post("/v1/view/read", json={"request": {"userId": user}})
    assert _err(r) == (400, "INVALID_REQUEST", "request.contentId")
    r = await client.post("/v1/view/read", json={"request": {"userId": user, "contentId": []}})
    assert r.status_code == 400


async def test_missing_user_without_auth(client):
    r = await client.post("/v1/view/start", json={"request": {"contentId": "c"}})
    assert r.status_code == 400 and r.json()["result"]["field"] == "request.userId"


async def test_unknown_route_and_method(client):
    r = await client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["params"]["err"] == "NOT_FOUND"
    r = await client.get("/v1/view/start")
    assert r.status_code == 405 and r.json()["params"]["status"] == "failed"


@pytest.mark.settings(max_progress_details_bytes=1000)
@pytest.mark.parametrize("route", ["update", "end"])
async def test_the_progress_details_limit_is_the_configured_one(client, service, user, route):
    await call(client, "start", userId=user, contentId="c")
    before = await db_rows(service, user)
    r = await client.post(f"/v1/view/{route}", json={"request": {"userId": user, "contentId": "c",
                                                                  "progressDetails": {"blob": "x" * 1000}}})
    assert _err(r) == (400, "INVALID_VALUE", "request.progressDetails")
    assert await db_rows(service, user) == before
    status, _ = await call(client, route, userId=user, contentId="c", progressDetails={"blob": "x" * 900})
    assert status == 200


@pytest.mark.settings(max_progress_details_bytes=1000)
async def test_the_lms_route_keeps_the_configured_progress_details_limit(client, service, user):
    item = {"contentId": "c", "courseId": "do_c", "batchId": "do_c", "status": 1}
    r = await client.patch("/v1/content/state/update", json={"request": {"userId": user, "contents": [
        {**item, "progressdetails": {"blob": "x" * 1000}}]}})
    body = r.json()
    assert (r.status_code, body["params"]["err"], body["result"]["field"]) == \
        (400, "INVALID_PARAMETER_VALUE", "request.contents.0.progressdetails")
    assert await db_rows(service, user) == []


@pytest.mark.parametrize("details, field", [({"n": 2**70}, "n"), ({"s": "a\u0000b"}, "s")])
async def test_progress_details_the_database_cannot_store_are_refused(client, service, user, details, field):
    await call(client, "start", userId=user, contentId="c")
    r = await client.post("/v1/view/update", content=__import__("json").dumps(
        {"request": {"userId": user, "contentId": "c", "progressDetails": details}}),
        headers={"content-type": "application/json"})
    assert _err(r) == (400, "INVALID_VALUE", f"request.progressDetails.{field}")

"""Hostile input gets a documented 400, the same on both backends: numbers beyond 64 bits,
non-finite numbers and NUL characters anywhere in a body (free-form fields included), booleans
and strings for numbers, and an erase-all flag that is not an explicit yes."""

import json

import pytest

from helpers import call, db_rows, read

BIG = 36295460713195440054175006720


async def _send(client, method: str, path: str, raw: str):
    r = await client.request(method, path, content=raw, headers={"content-type": "application/json"})
    body = r.json()
    return r.status_code, body["params"]["err"], body["result"]["field"] if r.status_code >= 400 else None


def _raw(request: dict) -> str:
    return json.dumps({"request": request})


@pytest.mark.parametrize("method, path, request_body, field", [
    ("PUT", "/v1/context/x", {"type": "batch", "collectionIds": ["c"], "extra": {"n": BIG}}, "request.extra.n"),
    ("PUT", "/v1/context/x", {"type": "batch", "collectionIds": ["c"], "startDate": 1180591620717411303424},
     "request.startDate"),
    ("PUT", "/v1/context/x", {"type": "batch", "collectionIds": ["c"], "extra": ["ok", "a\u0000b"]}, "request.extra.1"),
    ("PUT", "/v1/context/x", {"type": "batch", "collectionIds": ["c"], "k\u0000": 1}, "request.k\u0000"),
    ("POST", "/v1/certificate/issued", {"userId": "u", "collectionId": "c", "certificate": {"id": "i", "n": -BIG}},
     "request.certificate.n"),
    ("POST", "/v1/certificate/issued", {"userId": "u", "collectionId": "c", "certificate": {"id": "i", "name": "a\u0000"}},
     "request.certificate.name"),
    ("POST", "/v1/view/update", {"userId": "u", "contentId": "c", "progressDetails": {"p": [1, BIG]}},
     "request.progressDetails.p.1"),
    ("POST", "/v1/view/start", {"userId": "u", "contentId": "c", "ts": BIG}, "request.ts"),
    ("POST", "/v1/enrol", {"userId": "u", "collectionId": "c", "enrolledDate": 2**64}, "request.enrolledDate"),
    ("POST", "/v1/assessment/submit", {"userId": "u", "contentId": "c", "assessments": [{"eid": "ASSESS", "ets": BIG}]},
     "request.assessments.0.ets"),
    ("PUT", "/v1/collection/col", {"name": "n", "size": 123456789012345678901234567890}, "request.size"),
    ("PUT", "/v1/collection/col", {"name": "nul \u0000"}, "request.name"),
    ("POST", "/v1/view/read", {"userId": "u\u0000", "contentId": "c"}, "request.userId"),
])
async def test_unstorable_values_are_invalid_value_with_the_field(client, method, path, request_body, field):
    assert await _send(client, method, path, _raw(request_body)) == (400, "INVALID_VALUE", field)


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
async def test_non_finite_numbers_are_refused(client, number):
    raw = '{"request": {"userId": "u", "contentId": "c", "progressDetails": {"x": %s}}}' % number
    assert await _send(client, "POST", "/v1/view/update", raw) == (400, "INVALID_VALUE", "request.progressDetails.x")
    raw = '{"request": {"userId": "u", "contentId": "c", "timespent": %s}}' % number
    assert (await _send(client, "POST", "/v1/view/end", raw))[::2] == (400, "request.timespent")


async def test_large_ids_of_digits_and_64_bit_numbers_are_accepted(client, user):
    cid = "do_11283193441064550414"
    details = {"max": 2**63 - 1, "min": -(2**63), "pos": 1.5e300, "s": "12345678901234567890"}
    assert (await call(client, "start", userId=user, contentId=cid))[0] == 200
    assert (await call(client, "update", userId=user, contentId=cid, progress=10, progressDetails=details))[0] == 200
    assert (await read(client, userId=user, contentId=[cid]))[cid]["progressDetails"] == details


@pytest.mark.parametrize("field, value", [
    ("progress", True), ("progress", "55"), ("timespent", True), ("timespent", "5"), ("ts", True), ("ts", False),
])
async def test_numbers_must_be_json_numbers(client, user, field, value):
    await call(client, "start", userId=user, contentId="c")
    status, body = await call(client, "update", userId=user, contentId="c", **{field: value})
    assert (status, body["params"]["err"], body["result"]["field"]) == (400, "INVALID_TYPE", f"request.{field}")
    assert (await read(client, userId=user, contentId=["c"]))["c"]["progress"] == 0


async def test_other_numeric_fields_are_strict_too(client, user):
    r = await client.put("/v1/context/strict-ctx", json={"request": {
        "type": "batch", "collectionIds": ["c"], "startDate": "1700000000000x",
        "carryForward": {"mode": "copy-content", "windowDays": "3"}}})
    errors = {(e["field"], e["code"]) for e in r.json()["result"]["errors"]}
    assert r.status_code == 400 and ("request.carryForward.windowDays", "INVALID_TYPE") in errors, r.text
    r = await client.post("/v1/enrol", json={"request": {"userId": user, "collectionId": "c", "enrolledDate": True}})
    assert (r.status_code, r.json()["result"]["field"]) == (400, "request.enrolledDate")


@pytest.mark.parametrize("value", ["false", "maybe", "0", "no", "TRUE2"])
async def test_erase_all_takes_only_an_explicit_yes(client, service, user, value):
    assert (await call(client, "start", userId=user, contentId="c"))[0] == 200
    r = await client.delete(f"/v1/summary/delete/{user}?all={value}")
    assert (r.status_code, r.json()["params"]["err"], r.json()["result"]["field"]) == (400, "INVALID_VALUE", "all")
    assert len(await db_rows(service, user)) == 1  # nothing erased
    r = await client.delete(f"/v1/summary/delete/{user}?all=true")
    assert r.status_code == 200 and r.json()["result"]["erased"]["user_content_consumption"] == 1
    assert await db_rows(service, user) == []


@pytest.mark.parametrize("item, field", [
    ({"status": 2**63}, "request.contents.0.status"),
    ({"status": 2, "progressdetails": {"a": "x\u0000"}}, "request.contents.0.progressdetails.a"),
    ({"status": 2, "lastAccessTime": -BIG}, "request.contents.0.lastAccessTime"),
])
async def test_the_lms_routes_refuse_unstorable_values_too(client, user, item, field):
    body = {"request": {"userId": user, "contents": [{"contentId": "c1", "courseId": "co", "batchId": "b", **item}]}}
    assert await _send(client, "PATCH", "/v1/content/state/update", json.dumps(body)) == \
        (400, "INVALID_PARAMETER_VALUE", field)

"""The view lifecycle through HTTP, on SQLite and on PostgreSQL + Redis."""

import re

import pytest

from helpers import call, db_rows, dirty_marks, now_ms, read


@pytest.fixture(params=["sqlite", "postgres", "cluster"])
def backend(request) -> str:
    """These tests also run on PostgreSQL + a three-master Redis Cluster."""
    return request.param


async def test_lifecycle_round_trip_in_the_seed_envelope(client, user):
    status, body = await call(client, "start", userId=user, contentId="do_1", collectionId="col", contextId="b1")
    assert status == 200
    assert body["id"] == "api.view.start" and body["ver"] == "v1" and body["responseCode"] == "OK"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}\+0000", body["ts"])
    assert body["params"]["status"] == "success" and body["params"]["err"] is None
    assert body["result"] == {"do_1": "Progress started"}

    status, body = await call(client, "update", userId=user, contentId="do_1", collectionId="col", contextId="b1",
                              progress=45, progressDetails={"mimetype": "video", "position": 30}, timespent=12)
    assert (status, body["id"], body["result"]) == (200, "api.view.update", {"do_1": "SUCCESS"})

    got = await read(client, userId=user, contentId=["do_1"], collectionId="col", contextId="b1")
    assert got["do_1"]["status"] == 1 and got["do_1"]["progress"] == 45
    assert got["do_1"]["progressDetails"] == {"mimetype": "video", "position": 30}
    assert got["do_1"]["score"] is None and got["do_1"]["max_score"] is None

    status, body = await call(client, "end", userId=user, contentId="do_1", collectionId="col", contextId="b1")
    assert (status, body["id"], body["result"]) == (200, "api.view.end", {"do_1": "Progress ended"})
    got = await read(client, userId=user, contentId="do_1", collectionId="col", contextId="b1")
    assert got["do_1"]["status"] == 2 and got["do_1"]["progress"] == 100
    assert got["do_1"]["lastCompletedTime"] is not None

    [row] = await db_rows(client._transport.app.state.app.views, user)
    assert (row["time_spent"], row["view_count"]) == (12.0, 1)


async def test_msgid_is_echoed(client, user):
    r = await client.post("/v1/view/start", json={"params": {"msgid": "m-1"}, "request": {"userId": user, "contentId": "c"}})
    assert r.json()["params"]["msgid"] == "m-1"
    r = await client.post("/v1/view/start", json={"request": {"userId": user, "contentId": "c"}},
                          headers={"x-request-id": "h-2"})
    assert r.json()["params"]["msgid"] == "h-2"


async def test_ids_default_as_in_seed_scenarios(client, service, user):
    await call(client, "start", userId=user, contentId="alone")
    await call(client, "start", userId=user, contentId="inside", collectionId="col")
    keys = {(r["collection_id"], r["context_id"], r["content_id"]) for r in await db_rows(service, user)}
    assert keys == {("alone", "alone", "alone"), ("col", "col", "inside")}
    assert (await read(client, userId=user, contentId="alone"))["alone"]["status"] == 1
    assert (await read(client, userId=user, contentId="inside", collectionId="col"))["inside"]["status"] == 1
    # Strict: the same content in another context is not started there.
    assert (await read(client, userId=user, contentId="inside", collectionId="col", contextId="b9"))["inside"]["status"] == 0


async def test_read_many_ids_and_a_whole_collection(client, user):
    for c in ("a", "b"):
        await call(client, "start", userId=user, contentId=c, collectionId="col")
    await call(client, "end", userId=user, contentId="b", collectionId="col")
    got = await read(client, userId=user, contentId=["a", "b", "never"], collectionId="col")
    assert [got[c]["status"] for c in ("a", "b", "never")] == [1, 2, 0]
    whole = await read(client, userId=user, collectionId="col")
    assert sorted(whole) == ["a", "b"]
    # Without a collection each content is its own scope.
    await call(client, "start", userId=user, contentId="solo1")
    got = await read(client, userId=user, contentId=["solo1", "solo2"])
    assert (got["solo1"]["status"], got["solo2"]["status"]) == (1, 0)


@pytest.mark.parametrize("op", ["update", "end"])
async def test_update_or_end_before_start_is_a_clear_error_and_writes_nothing(client, service, user, op):
    status, body = await call(client, op, userId=user, contentId="c1", progress=10) if op == "update" else \
        await call(client, op, userId=user, contentId="c1")
    assert status == 404
    assert body["params"]["err"] == "VIEW_NOT_STARTED" and body["params"]["status"] == "failed"
    assert body["result"]["field"] == "request.contentId"
    assert await db_rows(service, user) == [] and await dirty_marks(service, user) == []


async def test_second_start_keeps_completion_and_counts_the_view(client, service, user):
    await call(client, "start", userId=user, contentId="c")
    await call(client, "end", userId=user, contentId="c")
    status, body = await call(client, "start", userId=user, contentId="c")
    assert status == 200 and body["result"] == {"c": "Progress started"}
    [row] = await db_rows(service, user)
    assert (row["status"], row["progress"], row["view_count"]) == (2, 100, 2)


async def test_revisit_never_moves_status_progress_or_completion_time(client, user):
    t = now_ms() - 60_000
    await call(client, "start", userId=user, contentId="c", ts=t)
    await call(client, "end", userId=user, contentId="c", ts=t + 1000)
    await call(client, "start", userId=user, contentId="c", ts=t + 5000)
    await call(client, "update", userId=user, contentId="c", ts=t + 6000, progress=5)
    await call(client, "end", userId=user, contentId="c", ts=t + 9000)
    got = (await read(client, userId=user, contentId="c"))["c"]
    assert (got["status"], got["progress"], got["lastCompletedTime"]) == (2, 100, t + 1000)
    assert got["lastAccessTime"] == t + 9000


async def test_client_time_orders_offline_updates(client, user):
    t = now_ms() - 60_000
    await call(client, "start", userId=user, contentId="c", ts=t)
    await call(client, "update", userId=user, contentId="c", ts=t + 2000, progressDetails={"pos": 2}, progress=60)
    await call(client, "update", userId=user, contentId="c", ts=t + 1000, progressDetails={"pos": 1}, progress=30)
    got = (await read(client, userId=user, contentId="c"))["c"]
    assert (got["progressDetails"], got["progress"], got["lastAccessTime"]) == ({"pos": 2}, 60, t + 2000)


async def test_iso_timestamps_are_accepted(client, user):
    await call(client, "start", userId=user, contentId="c", ts="2024-01-02T03:04:05Z")
    got = (await read(client, userId=user, contentId="c"))["c"]
    assert got["lastAccessTime"] == 1704164645000


async def test_sunbird_lowercase_progressdetails_is_accepted(client, user):
    await call(client, "start", userId=user, contentId="c")
    await call(client, "end", userId=user, contentId="c", progressdetails={"mimetype": "video", "progress": 10})
    assert (await read(client, userId=user, contentId="c"))["c"]["progressDetails"] == {"mimetype": "video", "progress": 10}


async def test_end_marks_the_scope_dirty_in_the_same_transaction(client, service, user):
    await call(client, "start", userId=user, contentId="c", collectionId="col", contextId="b")
    await call(client, "update", userId=user, contentId="c", collectionId="col", contextId="b", progress=3)
    assert await dirty_marks(service, user) == []
    await call(client, "end", userId=user, contentId="c", collectionId="col", contextId="b")
    await call(client, "end", userId=user, contentId="c", collectionId="col", contextId="b")
    [mark] = await dirty_marks(service, user)
    assert (mark["collection_id"], mark["context_id"], mark["seq"]) == ("col", "b", 2)


async def test_openapi_documents_every_body(client):
    doc = (await client.get("/openapi.json")).json()
    for op, model in [("start", "StartRequest"), ("update", "UpdateRequest"), ("end", "EndRequest"), ("read", "ReadRequest")]:
        body = doc["paths"][f"/v1/view/{op}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
        assert "request" in doc["components"]["schemas"][model]["properties"]
    assert "progressDetails" in doc["components"]["schemas"]["UpdateBody"]["properties"]

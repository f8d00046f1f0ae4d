"""Contexts, enrolments, the aggregation worker and the summary APIs, through HTTP, on SQLite
and on PostgreSQL + Redis (the worker runs inside the app in these tests)."""

import asyncio

import pytest

from conftest import wait_until
from helpers import now_ms
from progress_helpers import (events_for, post, put_collection, queue_empty, stored_aggs, stored_enrolment,
                              summary, view)

UNIT = "application/vnd.ekstep.content-collection"


@pytest.fixture(params=["sqlite", "postgres", "cluster"])
def backend(request) -> str:
    """These tests also run on PostgreSQL + a three-master Redis Cluster."""
    return request.param



async def test_context_round_trip_and_bad_input(client):
    r = await client.put("/v1/context/b-1", json={"request": {
        "type": "batch", "collectionIds": ["c1", "c2"], "startDate": "2026-01-01", "endDate": 1798761600000,
        "carryForward": {"mode": "none"}}})
    assert r.status_code == 200, r.json()
    got = (await client.get("/v1/context/b-1")).json()["result"]
    assert got["type"] == "batch" and got["collectionIds"] == ["c1", "c2"]
    assert got["startDate"] == 1767225600000 and got["document"]["carryForward"] == {"mode": "none", "withinContextDates": False}
    for req, field in [({"collectionIds": ["c"]}, "request.type"),
                       ({"type": "batch", "collectionIds": []}, "request.collectionIds"),
                       ({"type": "batch", "collectionIds": ["c"], "startDate": 2, "endDate": 1}, "request.endDate"),
                       ({"type": "batch", "collectionIds": ["c"], "startDate": "soon"}, "request.startDate"),
                       ({"type": "batch", "collectionIds": ["c"], "carryForward": {"mode": "teleport"}},
                        "request.carryForward.mode"),
                       ({"type": "batch", "collectionIds": ["c"], "carryForward": {"mode": "move", "windowDays": -1}},
                        "request.carryForward.windowDays"),
                       ({"type": "batch", "collectionIds": ["c"], "carryForward": {"mode": "move", "window": 9}},
                        "request.carryForward.window")]:
        r = await client.put("/v1/context/b-2", json={"request": req})
        assert r.status_code == 400, (req, r.json())
        assert r.json()["id"] == "api.context.put" and r.json()["result"]["field"] == field
    r = await client.get("/v1/context/nope")
    assert r.status_code == 404 and r.json()["params"]["err"] == "CONTEXT_NOT_FOUND"


async def test_enrol_is_idempotent_and_checks_the_context(client, app, user):
    await client.put("/v1/context/batch-e", json={"request": {"type": "batch", "collectionIds": ["course-e"]}})
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-e", contextId="batch-e",
                          enrolledDate=1_700_000_000_000)
    assert st == 200 and body["result"]["created"] is True and body["result"]["active"] is True
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-e", contextId="batch-e")
    assert st == 200 and body["result"]["created"] is False
    assert body["result"]["enrolledDate"] == 1_700_000_000_000  # the first enrolment's date stays
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="other", contextId="batch-e")
    assert st == 400 and body["result"]["field"] == "request.collectionId"
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-e", contextId="no-such-batch")
    assert st == 404 and body["params"]["err"] == "CONTEXT_NOT_FOUND"
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-e", enrolledDate=now_ms() + 86_400_000)
    assert st == 400 and body["result"]["field"] == "request.enrolledDate"
    # The collection's own context needs no registration.
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-e")
    assert st == 200 and body["result"]["contextId"] == "course-e"


async def test_unenrol_keeps_progress_and_re_enrol_reactivates(client, app, user):
    await put_collection(client, "course-u", leafNodes=["a", "b"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-u")
    await view(client, user, "a", "course-u")
    st, body = await post(client, "/v1/unenrol", userId=user, collectionId="course-u")
    assert st == 200 and body["result"]["active"] is False
    s = await summary(client, user, "course-u")
    assert s["active"] is False and s["contentStatus"] == {"a": 2} and s["progress"] == 50
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-u")
    assert body["result"]["active"] is True and body["result"]["created"] is True
    st, body = await post(client, "/v1/unenrol", userId=user, collectionId="never")
    assert st == 404 and body["params"]["err"] == "ENROLMENT_NOT_FOUND"


async def test_summary_is_read_after_write_and_the_worker_completes_once(client, app, user):
    await put_collection(client, "course-r", leafNodes=["a", "b", "c"], description="d", appIcon="https://x/i.png")
    await post(client, "/v1/enrol", userId=user, collectionId="course-r", enrolledDate=1_700_000_000_000)
    t0 = now_ms() - 60_000
    await view(client, user, "a", "course-r", ts=t0)
    s = await summary(client, user, "course-r")  # no waiting for the worker
    assert s["contentStatus"] == {"a": 2} and s["progress"] == 33 and s["status"] == 1
    assert s["collection"] == {"identifier": "course-r", "name": "Course course-r", "logo": "https://x/i.png",
                               "leafNodesCount": 3, "description": "d"}
    assert s["enrolledDate"] == 1_700_000_000_000 and s["active"] is True and s["completedOn"] is None
    await view(client, user, "b", "course-r", ts=t0 + 1000)
    await view(client, user, "c", "course-r", ts=t0 + 2000)
    s = await summary(client, user, "course-r")
    assert (s["progress"], s["status"]) == (100, 2)
    # completedOn: the client time of the completing view end, not when the worker ran.
    assert await wait_until(lambda: _completed(app, user, "course-r"))
    row = await stored_enrolment(app, user, "course-r")
    assert (row.status, row.progress, row.completed_on) == (2, 100, t0 + 2000)
    assert (await summary(client, user, "course-r"))["completedOn"] == t0 + 2000
    assert await wait_until(lambda: _events(app, user, 2))
    kinds = sorted(e["eid"] for e in events_for(app, user))
    assert kinds == ["AUDIT", "BE_JOB_REQUEST"]
    cert = next(e for e in events_for(app, user) if e["eid"] == "BE_JOB_REQUEST")
    assert cert["edata"]["userIds"] == [user] and cert["edata"]["courseId"] == "course-r"
    # A revisit and another recompute emit nothing more.
    await view(client, user, "a", "course-r")
    assert await wait_until(lambda: queue_empty(app, user))
    await asyncio.sleep(0.2)
    assert len(events_for(app, user)) == 2


async def _completed(app, user, collection):
    row = await stored_enrolment(app, user, collection)
    return row is not None and row.completed_on is not None


async def _events(app, user, n):
    return len(events_for(app, user)) >= n


async def test_units_and_optional_contents(client, app, user):
    await put_collection(client, "course-n", children=[
        {"identifier": "u1", "mimeType": UNIT, "children": [{"identifier": "a"}, {"identifier": "b"}]},
        {"identifier": "u2", "mimeType": UNIT, "children": [
            {"identifier": "c"}, {"identifier": "o", "relationalMetadata": {"optional": True}}]}])
    await post(client, "/v1/enrol", userId=user, collectionId="course-n")
    for c in ("a", "b", "o"):
        await view(client, user, c, "course-n")
    s = await summary(client, user, "course-n")
    assert s["collection"]["leafNodesCount"] == 3 and s["progress"] == 66 and s["status"] == 1
    assert await wait_until(lambda: queue_empty(app, user))
    aggs = {(a.activity_type, a.activity_id): a for a in await stored_aggs(app, user)}
    assert aggs[("Unit", "u1")].status == 2 and aggs[("Unit", "u1")].progress == 100
    assert aggs[("Unit", "u2")].status == 0
    course = aggs[("Course", "course-n")]
    assert course.aggregates["completedCount"] == 2 and course.content_status == {"a": 2, "b": 2, "o": 2}


async def test_consumption_without_enrolment_still_has_a_summary(client, user):
    ts = now_ms() - 5000
    await view(client, user, "a", "course-i", end=False, ts=ts)
    await view(client, user, "standalone", "standalone")  # a content on its own is not a summary
    st, body = await post(client, "/v1/enrol", userId=user, collectionId="course-x")
    r = await client.get(f"/v1/summary/list/{user}")
    assert r.status_code == 200 and r.json()["id"] == "api.summary.list"
    got = {s["collectionId"]: s for s in r.json()["result"]["summary"]}
    assert set(got) == {"course-i", "course-x"}
    assert got["course-i"]["enrolledDate"] == ts and got["course-i"]["enrolled"] is False
    assert got["course-i"]["status"] == 1 and got["course-i"]["collection"] == {}
    assert got["course-x"]["enrolled"] is True and got["course-x"]["status"] == 0


async def test_an_unknown_collection_is_no_poison_pill(client, app, user):
    await post(client, "/v1/enrol", userId=user, collectionId="course-later")
    await view(client, user, "a", "course-later")
    await put_collection(client, "course-known", leafNodes=["k"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-known")
    await view(client, user, "k", "course-known")
    assert await wait_until(lambda: _completed(app, user, "course-known"))  # not stuck behind the other
    assert (await stored_enrolment(app, user, "course-later")).completed_on is None
    assert (await summary(client, user, "course-later"))["contentStatus"] == {"a": 2}
    await put_collection(client, "course-later", leafNodes=["a"])  # becomes known: computed at once
    assert await wait_until(lambda: _completed(app, user, "course-later"))


async def test_completion_date_never_moves_when_the_collection_grows(client, app, user):
    await put_collection(client, "course-g", leafNodes=["a"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-g")
    ts = now_ms() - 10_000
    await view(client, user, "a", "course-g", ts=ts)
    assert await wait_until(lambda: _completed(app, user, "course-g"))
    await put_collection(client, "course-g", leafNodes=["a", "b"])
    assert await wait_until(lambda: queue_empty(app, user))
    s = await summary(client, user, "course-g")
    assert (s["status"], s["completedOn"], s["progress"]) == (2, ts, 50)
    row = await stored_enrolment(app, user, "course-g")
    assert (row.status, row.completed_on) == (2, ts)


async def test_enrolling_after_finishing_completes_the_enrolment(client, app, user):
    await put_collection(client, "course-late", leafNodes=["a"])
    ts = now_ms() - 10_000
    await view(client, user, "a", "course-late", ts=ts)
    await post(client, "/v1/enrol", userId=user, collectionId="course-late")
    assert await wait_until(lambda: _completed(app, user, "course-late"))
    assert (await stored_enrolment(app, user, "course-late")).completed_on == ts
    assert await wait_until(lambda: _events(app, user, 2))


async def test_issued_certificates_appear_in_the_summary(client, user):
    await post(client, "/v1/enrol", userId=user, collectionId="course-c")
    cert = {"id": "cert-1", "name": "Completion", "token": "T1", "lastIssuedOn": "2026-11-24"}
    st, body = await post(client, "/v1/certificate/issued", userId=user, collectionId="course-c", certificate=cert)
    assert st == 200, body
    st, body = await post(client, "/v1/certificate/issued", userId=user, collectionId="course-c",
                          certificate={**cert, "token": "T2"})
    s = await summary(client, user, "course-c")
    assert s["issuedCertificates"] == [{**cert, "token": "T2"}]
    st, body = await post(client, "/v1/certificate/issued", userId=user, collectionId="nope", certificate=cert)
    assert st == 404
    st, body = await post(client, "/v1/certificate/issued", userId=user, collectionId="course-c", certificate={})
    assert st == 400 and body["result"]["field"] == "request.certificate.id"


async def test_read_after_write_under_concurrent_writers(client, user):
    leaves = [f"c{i}" for i in range(20)]
    await put_collection(client, "course-cc", leafNodes=leaves)
    await post(client, "/v1/enrol", userId=user, collectionId="course-cc")

    async def learner_tab(cid):
        await view(client, user, cid, "course-cc")
        s = await summary(client, user, "course-cc")
        assert s["contentStatus"].get(cid) == 2, (cid, s["contentStatus"])  # my acknowledged end is there

    await asyncio.gather(*(learner_tab(c) for c in leaves))
    s = await summary(client, user, "course-cc")
    assert s["progress"] == 100 and s["status"] == 2


async def test_summary_read_of_nothing_is_404_and_bad_ids_are_400(client, user):
    st, body = await post(client, "/v1/summary/read", userId=user, collectionId="none")
    assert st == 404 and body["id"] == "api.summary.read"
    r = await client.get("/v1/summary/list/" + "x" * 300)
    assert r.status_code == 400 and r.json()["result"]["field"] == "userId"
    r = await client.get(f"/v1/summary/list/{user}")
    assert r.json()["result"] == {"summary": []}


async def test_erase_one_enrolment_then_all(client, app, user):
    for col in ("course-d1", "course-d2"):
        await put_collection(client, col, leafNodes=["a"])
        await post(client, "/v1/enrol", userId=user, collectionId=col)
        await view(client, user, "a", col)
    assert await wait_until(lambda: _completed(app, user, "course-d1"))
    r = await client.request("DELETE", f"/v1/summary/delete/{user}",
                             json={"request": {"userId": user, "collectionId": "course-d1"}})
    assert r.status_code == 200 and r.json()["id"] == "api.summary.delete", r.json()
    assert r.json()["result"]["erased"]["user_content_consumption"] == 1
    st, _ = await post(client, "/v1/summary/read", userId=user, collectionId="course-d1")
    assert st == 404
    st, body = await post(client, "/v1/view/read", userId=user, contentId=["a"], collectionId="course-d1")
    assert body["result"]["contents"][0]["status"] == 0
    assert [s["collectionId"] for s in (await client.get(f"/v1/summary/list/{user}")).json()["result"]["summary"]] \
        == ["course-d2"]
    r = await client.delete(f"/v1/summary/delete/{user}?all")
    assert r.status_code == 200
    assert (await client.get(f"/v1/summary/list/{user}")).json()["result"]["summary"] == []
    assert await stored_aggs(app, user) == [] and await stored_enrolment(app, user, "course-d2") is None
    r = await client.delete(f"/v1/summary/delete/{user}?all")  # idempotent
    assert r.status_code == 200 and set(r.json()["result"]["erased"].values()) == {0}
    r = await client.delete(f"/v1/summary/delete/{user}")
    assert r.status_code == 400 and r.json()["result"]["field"] == "request.collectionId"
    assert len(await _erasures(app, user)) == 3


async def _erasures(app, user):
    import sqlalchemy as sa
    from viewer_service.adapters.db.tables import erasure_log
    async with app.state.app.views.reader.connect() as conn:
        return (await conn.execute(sa.select(erasure_log).where(erasure_log.c.user_id == user))).all()

"""lms-service's content state routes (docs/sunbird.md), through HTTP on SQLite and PostgreSQL + Redis.

Request bodies and expected answers come from lms-service's own API doc
(service/doc/api/collections/courseprogressapi.yaml) and actor tests
(CourseConsumptionActorTest.scala), plus the merge scenarios of the reference (2.3, 2.4)."""

from __future__ import annotations

import uuid

import pytest

from helpers import now_ms, read
from progress_helpers import post, put_collection
from test_api_assessments import assess

DAY = 86_400_000


def uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


async def put_batch(client, batch: str, courses: list[str], start=None, end=None):
    req = {"type": "batch", "collectionIds": courses}
    if start is not None:
        req["startDate"] = start
    if end is not None:
        req["endDate"] = end
    r = await client.put(f"/v1/context/{batch}", json={"request": req})
    assert r.status_code == 200, r.json()


async def update(client, path="/v1/content/state/update", **request):
    r = await client.patch(path, json={"request": request})
    return r.status_code, r.json()


async def state(client, path="/v1/content/state/read", **request) -> dict:
    r = await client.post(path, json={"request": request})
    body = r.json()
    assert r.status_code == 200, body
    assert body["id"] == "api.content.state.read" and body["responseCode"] == "OK"
    return {c["contentId"]: c for c in body["result"]["contentList"]}


@pytest.fixture
async def course(client):
    """A registered, ongoing batch of a course: (course, batch)."""
    c, b = uid("do_course"), uid("batch")
    await put_batch(client, b, [c], start=now_ms() - DAY)
    return c, b


async def test_update_example_from_api_doc_then_read_back(client, user, course):
    c, b = course
    # courseprogressapi.yaml's UpdateContentState example
    st, body = await update(client, userId=user, contents=[
        {"contentId": "do_11259843042561228816", "batchId": b, "status": 2, "courseId": c,
         "lastAccessTime": "2020-11-23 12:58:35:179+0000"}])
    assert st == 200, body
    assert body["id"] == "api.content.state.update" and body["params"]["status"] == "success"
    assert body["result"] == {"do_11259843042561228816": "SUCCESS"}
    got = await state(client, userId=user, courseId=c, batchId=b, contentIds=["do_11259843042561228816"])
    item = got["do_11259843042561228816"]
    assert item["status"] == 2 and item["progress"] == 100
    assert item["courseId"] == c and item["collectionId"] == c and item["batchId"] == b
    assert item["lastAccessTime"] == "2020-11-23 12:58:35:179+0000"
    assert item["lastCompletedTime"] == "2020-11-23 12:58:35:179+0000"
    assert "userId" not in item and "lastUpdatedTime" not in item


async def test_alias_route_and_read_empty(client, user, course):
    c, b = course
    # The API doc's "content not consumed" answer.
    assert await state(client, userId=user, courseId=c, batchId=b, contentIds=["do_none"]) == {}
    st, body = await update(client, "/v1/user/content/state", userId=user,
                            contents=[{"contentId": "do_1", "batchId": b, "status": 1, "courseId": c}])
    assert st == 200 and body["result"] == {"do_1": "SUCCESS"}
    assert (await state(client, userId=user, courseId=c, batchId=b))["do_1"]["status"] == 1


async def test_actor_test_update_two_contents(client, user, course):
    c, b = course
    # CourseConsumptionActorTest "update Consumption": two contents, status 2, same batch.
    st, body = await update(client, userId=user, contents=[
        {"courseId": c, "batchId": b, "contentId": "do_456", "status": 2},
        {"courseId": c, "batchId": b, "contentId": "do_789", "status": 2}])
    assert st == 200 and body["result"] == {"do_456": "SUCCESS", "do_789": "SUCCESS"}
    got = await state(client, userId=user, courseId=c, batchId=b)
    assert sorted(got) == ["do_456", "do_789"]
    assert {v["status"] for v in got.values()} == {2}


async def test_merge_rules_monotonic_upsert(client, user, course):
    c, b = course

    async def send(**content):
        st, body = await update(client, userId=user, contents=[{"contentId": "do_m", "courseId": c, "batchId": b,
                                                                 **content}])
        assert st == 200, body
        return (await state(client, userId=user, courseId=c, batchId=b))["do_m"]

    # A new row with status 1 keeps its progress (Sunbird drops it to 0: scenario 28).
    assert (await send(status=1, progress=50))["progress"] == 50
    # Progress never goes down (scenario 31).
    assert (await send(status=1, progress=20))["progress"] == 50
    # Access time: an older one is ignored, a newer one replaces (scenario 33).
    assert (await send(status=1, lastAccessTime="2020-11-23 12:58:35:179+0000"))["lastAccessTime"] != \
        "2020-11-23 12:58:35:179+0000"
    # Completion: 100 %, with the client's completion time.
    done = await send(status=2, lastCompletedTime="2024-01-02 03:04:05:006+0530")
    assert done["status"] == 2 and done["progress"] == 100
    assert done["lastCompletedTime"] == "2024-01-01 21:34:05:006+0000"
    # Status never goes down (scenario 30); a later completion does not move the first one.
    again = await send(status=1, progress=10)
    assert again["status"] == 2 and again["progress"] == 100
    assert (await send(status=2, lastCompletedTime="2025-01-01 00:00:00:000+0000"))["lastCompletedTime"] == \
        "2024-01-01 21:34:05:006+0000"
    # progressdetails: the newest by client time, read back as JSON.
    d = await send(status=2, progressdetails={"current": ["p3"], "max_size": 10})
    assert d["progressdetails"] == {"current": ["p3"], "max_size": 10}


async def test_status_above_two_is_clamped_on_a_new_row(client, user, course):
    c, b = course
    st, body = await update(client, userId=user, contents=[{"contentId": "do_3", "courseId": c, "batchId": b,
                                                             "status": 3}])
    assert st == 200, body
    got = (await state(client, userId=user, courseId=c, batchId=b))["do_3"]
    assert got["status"] == 2 and got["progress"] == 100


@pytest.mark.parametrize("content, code, field", [
    ({"courseId": "C", "batchId": "B", "status": 2}, "CONTENT_ID_REQUIRED_ERROR", "request.contents.1.contentId"),
    ({"contentId": "x", "batchId": "B", "status": 2}, "COURSE_ID_REQUIRED_ERROR", "request.contents.1.courseId"),
    ({"contentId": "x", "courseId": "C", "batchId": "B"}, "CONTENT_STATUS_MISSING_ERROR", "request.contents.1.status"),
    ({"contentId": "x", "courseId": "C", "batchId": "B", "status": 2, "lastCompletedTime": "2020-11-23T12:58:35Z"},
     "DATE_FORMAT_ERRROR", "request.contents.1.lastCompletedTime"),
    ({"contentId": "x", "courseId": "C", "batchId": "B", "status": 1, "lastAccessTime": "yesterday"},
     "DATE_FORMAT_ERRROR", "request.contents.1.lastAccessTime"),
    ({"contentId": "x", "courseId": "C", "status": 2}, "COURSE_BATCH_ID_MISSING", "request.contents.1.batchId"),
    ({"contentId": "x", "courseId": "C", "batchId": "B", "status": "2"}, "DATA_TYPE_ERROR", "request.contents.1.status"),
    ({"contentId": "x", "courseId": "C", "batchId": "B", "status": 1, "progress": 101},
     "INVALID_PARAMETER_VALUE", "request.contents.1.progress"),
    ({"contentId": "x", "courseId": "C", "batchId": "B", "status": 1, "progressdetails": [1]},
     "DATA_TYPE_ERROR", "request.contents.1.progressdetails"),
])
async def test_update_errors_write_nothing(client, user, course, content, code, field):
    c, b = course
    content = {k: {"C": c, "B": b}.get(v, v) if isinstance(v, str) else v for k, v in content.items()}
    st, body = await update(client, userId=user, contents=[
        {"contentId": "do_ok", "courseId": c, "batchId": b, "status": 2}, content])
    assert st == 400, body
    assert body["responseCode"] == "CLIENT_ERROR" and body["params"]["err"] == code
    assert body["params"]["status"] == "failed" and body["result"]["field"] == field
    assert await state(client, userId=user, courseId=c, batchId=b) == {}


async def test_unknown_and_finished_batches_are_listed_and_not_written(client, user, course):
    c, b = course
    ended, future, other = uid("ended"), uid("future"), uid("other")
    await put_batch(client, ended, [c], start=now_ms() - 10 * DAY, end=now_ms() - DAY)
    await put_batch(client, future, [c], start=now_ms() + DAY)
    await put_batch(client, other, [uid("another_course")])  # does not offer this course
    st, body = await update(client, userId=user, contents=[
        {"contentId": "do_a", "courseId": c, "batchId": b, "status": 2},
        {"contentId": "do_b", "courseId": c, "batchId": "no-such-batch", "status": 2},
        {"contentId": "do_c", "courseId": c, "batchId": ended, "status": 2},
        {"contentId": "do_d", "courseId": c, "batchId": future, "status": 2},
        {"contentId": "do_e", "courseId": c, "batchId": other, "status": 2}])
    assert st == 200, body
    assert body["result"] == {"do_a": "SUCCESS", "BATCH_NOT_EXISTS": ["no-such-batch", other],
                              "NOT_A_ON_GOING_BATCH": [ended, future]}
    for batch in ("no-such-batch", ended, future, other):
        assert await state(client, userId=user, courseId=c, batchId=batch) == {}


async def test_assessment_completes_its_content_and_scores_read_back(client, user, course):
    c, b = course
    ts = now_ms() - 60_000
    st, body = await update(client, userId=user, assessments=[{
        "assessmentTs": str(ts), "courseId": c, "contentId": "do_quiz", "batchId": b, "userId": user,
        "attemptId": "att-1", "events": [assess("q1", ts - 2000, 1), assess("q2", ts - 1000, 0)]}])
    assert st == 200, body
    assert body["result"] == {b: "SUCCESS"}
    got = await state(client, userId=user, courseId=c, batchId=b, fields=["score"])
    q = got["do_quiz"]
    assert q["status"] == 2 and q["progress"] == 100
    assert q["score"] == [{"attemptId": "att-1", "lastAttemptedOn": q["score"][0]["lastAttemptedOn"],
                           "totalScore": 1.0, "totalMaxScore": 2.0}]
    assert q["score"][0]["lastAttemptedOn"].endswith("+0000")
    # Without "score" in fields there is no score.
    assert "score" not in (await state(client, userId=user, courseId=c, batchId=b))["do_quiz"]
    # The /v1 family sees the same attempt.
    st, body = await post(client, "/v1/assessment/read", userId=user, contentId="do_quiz", collectionId=c,
                          contextId=b)
    assert st == 200 and body["result"]["contents"][0]["score"] == 1.0


async def test_assessment_without_events_still_completes(client, user, course):
    c, b = course
    # The API doc's example sends an empty events list.
    st, body = await update(client, userId=user, assessments=[{
        "contentId": "do_q0", "batchId": b, "courseId": c, "userId": user, "attemptId": "a0",
        "assessmentTs": "1567591211000", "events": []}])
    assert st == 200 and body["result"] == {b: "SUCCESS"}
    assert (await state(client, userId=user, courseId=c, batchId=b))["do_q0"]["status"] == 2


@pytest.mark.parametrize("drop, code", [
    ("assessmentTs", "ATTEMPTED_DATE_REQUIRED"), ("courseId", "COURSE_ID_REQUIRED_ERROR"),
    ("contentId", "CONTENT_ID_REQUIRED_ERROR"), ("batchId", "COURSE_BATCH_ID_MISSING"),
    ("userId", "USERID_MISSING"), ("attemptId", "ATTEMPT_ID_REQUIRED_ERROR"), ("events", "EVENTS_DATA_MISSING"),
])
async def test_assessment_errors(client, user, course, drop, code):
    c, b = course
    item = {"assessmentTs": now_ms(), "courseId": c, "contentId": "do_q", "batchId": b, "userId": user,
            "attemptId": "a1", "events": [assess("q1", now_ms() - 1000, 1)]}
    del item[drop]
    st, body = await update(client, userId=user, contents=[{"contentId": "do_x", "courseId": c, "batchId": b,
                                                             "status": 2}], assessments=[item])
    assert st == 400 and body["params"]["err"] == code, body
    assert await state(client, userId=user, courseId=c, batchId=b) == {}


async def test_actor_test_assessment_with_bad_events_is_a_client_error(client, user, course):
    c, b = course
    # CourseConsumptionActorTest "update AssessmentScore": an ASSESS event without its data.
    st, body = await update(client, userId=user, assessments=[{
        "userId": user, "batchId": b, "courseId": c, "attemptId": "abcd", "contentId": "do_789",
        "assessmentTs": now_ms(), "events": [{"eid": "ASSESS", "ets": 123241}]}])
    assert st == 400 and body["responseCode"] == "CLIENT_ERROR", body
    assert await state(client, userId=user, courseId=c, batchId=b) == {}


async def test_write_legacy_read_v1_and_back(client, user, course):
    c, b = course
    st, body = await update(client, userId=user, contents=[
        {"contentId": "do_l", "courseId": c, "batchId": b, "status": 1, "progress": 40,
         "progressdetails": {"stageId": "s2"}}])
    assert st == 200, body
    got = await read(client, userId=user, contentId="do_l", collectionId=c, contextId=b)
    assert got["do_l"]["status"] == 1 and got["do_l"]["progress"] == 40
    assert got["do_l"]["progressDetails"] == {"stageId": "s2"}
    # ... and a /v1/view/update of the row the legacy route created (no start needed again).
    st, body = await post(client, "/v1/view/update", userId=user, contentId="do_l", collectionId=c, contextId=b,
                          progress=70)
    assert st == 200, body
    assert (await state(client, userId=user, courseId=c, batchId=b))["do_l"]["progress"] == 70


async def test_write_v1_read_legacy(client, user, course):
    c, b = course
    keys = {"userId": user, "contentId": "do_v", "collectionId": c, "contextId": b}
    assert (await post(client, "/v1/view/start", **keys))[0] == 200
    got = await state(client, userId=user, courseId=c, batchId=b)
    assert got["do_v"]["status"] == 1
    assert (await post(client, "/v1/view/end", **keys))[0] == 200
    got = await state(client, "/private/v1/content/state/read", userId=user, courseIds=[c, "other"], batchId=b)
    assert got["do_v"]["status"] == 2 and got["do_v"]["progress"] == 100


@pytest.mark.parametrize("request_, code, message", [
    ({"courseId": "C"}, "MANDATORY_PARAMETER_MISSING", "Mandatory parameter batchId is missing."),
    ({"batchId": "B"}, "MANDATORY_PARAMETER_MISSING", "Mandatory parameter courseId is missing."),
    ({"courseIds": "C", "batchId": "B"}, "DATA_TYPE_ERROR", "Data type of courseIds should be List."),
    ({"courseId": "C", "batchId": "B", "contentIds": "x"}, "DATA_TYPE_ERROR",
     "Data type of contentIds should be List."),
])
async def test_read_errors(client, user, request_, code, message):
    r = await client.post("/v1/content/state/read", json={"request": {"userId": user, **request_}})
    body = r.json()
    assert r.status_code == 400 and body["params"]["err"] == code and body["params"]["errmsg"] == message, body


async def test_read_without_user_is_an_error(client):
    r = await client.post("/v1/content/state/read", json={"request": {"courseId": "c", "batchId": "b"}})
    assert r.status_code == 400 and r.json()["params"]["err"] == "MANDATORY_PARAMETER_MISSING"


async def test_not_json_is_a_client_error(client):
    r = await client.patch("/v1/content/state/update", content=b"{not json")
    assert r.status_code == 400 and r.json()["params"]["err"] == "INVALID_REQUESTED_DATA"


async def test_enrolment_sync(client, user, course):
    c, b = course
    # CourseConsumptionActorTest "sync enrolment": no enrolment is a client error ...
    st, body = await update(client, userId=user, courseId=c, batchId=b)
    assert st == 400 and body["params"]["err"] == "INVALID_REQUESTED_DATA"
    assert body["params"]["errmsg"] == f"No Enrolment found for userId: {user}, batchId: {b}, courseId: {c}"
    # ... and with one, SUCCESS.
    assert (await post(client, "/v1/enrol", userId=user, collectionId=c, contextId=b))[0] == 200
    st, body = await update(client, userId=user, courseId=c, batchId=b)
    assert st == 200 and body["result"] == {"response": "SUCCESS"}


async def test_private_routes_can_be_turned_off(client, user, app, course):
    app.state.app.settings.private_routes = False
    try:
        r = await client.post("/private/v1/content/state/read",
                              json={"request": {"userId": user, "courseId": course[0], "batchId": course[1]}})
        assert r.status_code == 404 and r.json()["params"]["err"] == "NOT_FOUND"
    finally:
        app.state.app.settings.private_routes = True


async def test_completion_through_legacy_route_completes_the_enrolment(client, app, user, course):
    c, b = course
    await put_collection(client, c, children=[{"identifier": f"{c}_l{i}", "mimeType": "video/mp4"} for i in (1, 2)])
    assert (await post(client, "/v1/enrol", userId=user, collectionId=c, contextId=b))[0] == 200
    st, body = await update(client, userId=user, contents=[
        {"contentId": f"{c}_l{i}", "courseId": c, "batchId": b, "status": 2} for i in (1, 2)])
    assert st == 200, body
    st, body = await post(client, "/v1/summary/read", userId=user, collectionId=c, contextId=b)
    assert st == 200 and body["result"]["status"] == 2 and body["result"]["progress"] == 100


# -- enrolment list (CourseEnrolmentActor.list; reference 2.5) --------------------------------


async def courses(client, path=None, user=None, query="", **body) -> list[dict]:
    if path is None:
        r = await client.get(f"/v1/user/courses/list/{user}{query}")
    elif path.startswith("/private/v1"):
        r = await client.get(f"{path}/{user}{query}")
    else:
        r = await client.post(f"{path}{query}", json={"request": body})
    data = r.json()
    assert r.status_code == 200, data
    assert data["id"] == "api.user.courses.list"
    return data["result"]["courses"]


async def make_course(client, leaves=3, **doc):
    c, b = uid("do_course"), uid("batch")
    await put_collection(client, c, description="A course", appIcon="https://x/icon.png", **doc,
                         children=[{"identifier": f"{c}_l{i}", "mimeType": "video/mp4"} for i in range(leaves)])
    await put_batch(client, b, [c], start=now_ms() - DAY)
    return c, b


async def enrol(client, user, c, b, **extra):
    st, body = await post(client, "/v1/enrol", userId=user, collectionId=c, contextId=b, **extra)
    assert st == 200, body


async def test_list_progress_is_live_and_counts_completed_leaves(client, user):
    c, b = await make_course(client)
    await enrol(client, user, c, b)
    [e] = await courses(client, user=user)
    assert (e["courseId"], e["batchId"], e["userId"], e["active"]) == (c, b, user, True)
    assert (e["progress"], e["completionPercentage"], e["status"]) == (0, 0, 0)
    assert e["courseName"] == f"Course {c}" and e["description"] == "A course"
    assert e["courseLogoUrl"] == "https://x/icon.png" and e["leafNodesCount"] == 3
    assert e["contentId"] == c and e["collectionId"] == c and e["content"]["identifier"] == c
    assert e["enrolledDate"].endswith("+0000") and e["lastReadContentId"] is None
    # A content state update shows at once (Sunbird caches the list for 60 s).
    st, _ = await update(client, userId=user, contents=[
        {"contentId": f"{c}_l0", "courseId": c, "batchId": b, "status": 2,
         "lastAccessTime": "2024-05-01 10:00:00:000+0000"}])
    assert st == 200
    [e] = await courses(client, user=user)
    assert (e["progress"], e["completionPercentage"], e["status"]) == (1, 33, 1)
    assert e["contentStatus"] == {f"{c}_l0": 2}
    assert (e["lastReadContentId"], e["lastReadContentStatus"]) == (f"{c}_l0", 2)
    # A /v1 view end shows at once too, and becomes the last read content.
    keys = {"userId": user, "contentId": f"{c}_l1", "collectionId": c, "contextId": b}
    assert (await post(client, "/v1/view/start", **keys))[0] == 200
    assert (await post(client, "/v1/view/end", **keys))[0] == 200
    [e] = await courses(client, user=user)
    assert (e["progress"], e["completionPercentage"], e["status"]) == (2, 66, 1)
    assert (e["lastReadContentId"], e["lastReadContentStatus"]) == (f"{c}_l1", 2)
    st, _ = await update(client, userId=user, contents=[{"contentId": f"{c}_l2", "courseId": c, "batchId": b,
                                                          "status": 2}])
    [e] = await courses(client, user=user)
    assert (e["progress"], e["completionPercentage"], e["status"]) == (3, 100, 2)
    assert isinstance(e["completedOn"], int)


async def test_list_order_inactive_and_unknown_courses(client, user):
    c1, b1 = await make_course(client)
    c2, b2 = await make_course(client)
    c3, b3 = await make_course(client)
    c4, b4 = await make_course(client)
    for n, (c, b) in enumerate([(c1, b1), (c2, b2), (c3, b3), (c4, b4)]):
        await enrol(client, user, c, b, enrolledDate=now_ms() - (10 - n) * DAY)
    assert (await post(client, "/v1/unenrol", userId=user, collectionId=c4, contextId=b4))[0] == 200
    # An enrolment in a course the catalog does not know is left out, as lms-service drops courses
    # its search does not find.
    unknown, ub = uid("do_unknown"), uid("batch")
    await put_batch(client, ub, [unknown])
    await enrol(client, user, unknown, ub)
    # Last access: c1 older, c2 newer, c3 never: newer, older, then the never accessed.
    for c, b, t in ((c1, b1, "2024-01-01 00:00:00:000+0000"), (c2, b2, "2024-02-01 00:00:00:000+0000")):
        st, body = await update(client, userId=user, contents=[{"contentId": f"{c}_l0", "courseId": c, "batchId": b,
                                                                 "status": 1, "lastAccessTime": t}])
        assert st == 200, body
    got = await courses(client, user=user)
    assert [e["courseId"] for e in got] == [c2, c1, c3]
    assert got[0]["lastContentAccessTime"] > got[1]["lastContentAccessTime"]
    assert got[2]["lastContentAccessTime"] is None
    # v2 with courseIds; private v2 by body user; private v1 strips a federated prefix.
    got = await courses(client, "/v2/user/courses/list", userId=user, courseIds=[c1, c3])
    assert [e["courseId"] for e in got] == [c1, c3]
    got = await courses(client, "/private/v2/user/courses/list", userId=user)
    assert len(got) == 3
    got = await courses(client, "/private/v1/user/courses/list", user=f"f:provider:{user}")
    assert len(got) == 3


async def test_list_batch_details(client, user):
    c, b = await make_course(client)
    r = await client.put(f"/v1/context/{b}", json={"request": {
        "type": "batch", "collectionIds": [c], "name": "Batch one", "startDate": "2024-01-01",
        "endDate": "2099-12-31", "enrollmentType": "open"}})
    assert r.status_code == 200, r.json()
    await enrol(client, user, c, b)
    [e] = await courses(client, user=user, query="?batchDetails=name,endDate,enrollmentType")
    assert e["batch"] == {"name": "Batch one", "endDate": "2099-12-31", "enrollmentType": "open",
                          "batchId": b, "identifier": b}
    [e] = await courses(client, user=user)
    assert "batch" not in e


async def test_private_v2_needs_a_user(client):
    r = await client.post("/private/v2/user/courses/list", json={"request": {}})
    assert r.status_code == 400 and r.json()["params"]["err"] == "MANDATORY_PARAMETER_MISSING"


async def test_list_of_nobody_is_empty(client, user):
    assert await courses(client, user=user) == []


async def test_a_batch_changed_is_seen_at_once(client, user, course):
    c, b = course
    item = {"contentId": "do_a", "courseId": c, "batchId": b, "status": 1}
    assert (await update(client, userId=user, contents=[item]))[1]["result"] == {"do_a": "SUCCESS"}
    await put_batch(client, b, [c], start=now_ms() - 10 * DAY, end=now_ms() - DAY)  # the batch ended
    assert (await update(client, userId=user, contents=[item]))[1]["result"] == {"NOT_A_ON_GOING_BATCH": [b]}
    fresh = uid("batch")
    item = {**item, "batchId": fresh}
    assert (await update(client, userId=user, contents=[item]))[1]["result"] == {"BATCH_NOT_EXISTS": [fresh]}
    await put_batch(client, fresh, [c])  # registered after an update named it
    assert (await update(client, userId=user, contents=[item]))[1]["result"] == {"do_a": "SUCCESS"}

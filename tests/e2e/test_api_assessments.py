"""Assessment submit and reads through HTTP, on SQLite and on PostgreSQL + Redis (the worker and
the event dispatcher run inside the app in these tests)."""

import asyncio
import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from conftest import wait_until
from helpers import db_rows, now_ms
from progress_helpers import events_for, post, put_collection, queue_empty, stored_aggs, summary, view
from viewer_service.adapters.db.tables import assessment_aggregator, event_outbox


def assess(qid, ets, score, maxscore=1, attempt=None):
    e = {"eid": "ASSESS", "ets": ets, "edata": {"score": score, "duration": 3, "resvalues": [{"1": "B"}],
                                                "item": {"id": qid, "maxscore": maxscore, "type": "mcq",
                                                         "title": qid, "desc": "", "params": [{"1": "A"}]}}}
    if attempt:
        e["context"] = {"cdata": [{"type": "AttemptId", "id": attempt}]}
    return e


async def submit(client, **request):
    return await post(client, "/v1/assessment/submit", **request)


async def read_scores(client, **request) -> dict:
    st, body = await post(client, "/v1/assessment/read", **request)
    assert st == 200, body
    assert body["id"] == "api.assessment.read"
    return {c["identifier"]: c for c in body["result"]["contents"]}


async def attempts_stored(app, user) -> list:
    async with app.state.app.views.reader.connect() as conn:
        q = sa.select(assessment_aggregator).where(assessment_aggregator.c.user_id == user)
        return (await conn.execute(q.order_by(assessment_aggregator.c.attempt_id))).all()


async def outbox_empty(app, user) -> bool:
    async with app.state.app.views.reader.connect() as conn:
        q = sa.select(sa.func.count()).select_from(event_outbox).where(event_outbox.c.user_id == user)
        return (await conn.execute(q)).scalar() == 0


def reissues(app, user) -> list[dict]:
    return [e for e in events_for(app, user) if "attemptId" in e.get("edata", {})]


async def test_seed_form_submit_is_read_after_write_everywhere(client, app, user):
    t = now_ms() - 60_000
    await put_collection(client, "course-s", leafNodes=["video", "quiz"])
    events = [assess("q1", t, 1), assess("q2", t + 1, 0.33), assess("q3", t + 2, 0)]
    st, body = await submit(client, userId=user, collectionId="course-s", contextId="batch-s", contentId="quiz",
                            assessments=events)
    assert st == 200, body
    assert body["id"] == "api.assessment.submit" and body["result"] == {"quiz": "SUCCESS"}
    # No waiting for the worker: every read shows the acknowledged submit.
    got = await read_scores(client, userId=user, collectionId="course-s", contextId="batch-s", contentId=["quiz"])
    assert got["quiz"] == {"identifier": "quiz", "score": 1.33, "max_score": 3.0, "attempts": 1}
    st, body = await post(client, "/v1/view/read", userId=user, collectionId="course-s", contextId="batch-s",
                          contentId="quiz")
    [c] = body["result"]["contents"]
    assert (c["score"], c["max_score"], c["status"]) == (1.33, 3.0, 1)  # created as a started view
    s = await summary(client, user, "course-s", "batch-s")
    assert s["assessmentStatus"] == {"quiz": {"score": 1.33, "max_score": 3.0, "carried": False}}
    assert s["contentStatus"] == {"quiz": 1}
    [row] = await attempts_stored(app, user)
    assert (row.total_score, row.total_max_score, row.grand_total, row.last_attempted_on) == (1.33, 3.0, "1.33/3.0",
                                                                                              t + 2)
    assert [q["id"] for q in row.questions] == ["q1", "q2", "q3"]
    assert row.questions[0] == {"id": "q1", "score": 1.0, "max_score": 1.0, "type": "mcq", "title": "q1",
                                "description": "", "resvalues": [{"1": "B"}], "params": [{"1": "A"}],
                                "duration": 3.0, "assess_ts": t}
    # The whole scope: only its scored contents.
    assert set(await read_scores(client, userId=user, collectionId="course-s", contextId="batch-s")) == {"quiz"}


async def test_sunbird_form_and_attempt_details(client, app, user):
    t = now_ms() - 60_000
    attempts = [
        {"attemptId": "att-1", "assessmentTs": t, "courseId": "course-f", "batchId": "b-f", "contentId": "quiz",
         "userId": user, "events": [assess("q1", t, 2, 5), assess("q2", t, 3, 5)]},
        {"attemptId": "att-2", "assessmentTs": t + 1000, "courseId": "course-f", "batchId": "b-f",
         "contentId": "quiz", "userId": user, "events": [assess("q1", t + 1000, 5, 5), assess("q2", t + 1000, 3, 5)]},
    ]
    st, body = await submit(client, assessments=attempts)
    assert st == 200 and body["result"] == {"quiz": "SUCCESS"}, body
    got = await read_scores(client, userId=user, collectionId="course-f", contextId="b-f", contentId="quiz",
                            fields=["attempts"])
    assert got["quiz"]["score"] == 8.0 and got["quiz"]["max_score"] == 10.0 and got["quiz"]["attempts"] == 2
    assert got["quiz"]["attemptDetails"] == [
        {"attemptId": "att-1", "score": 5.0, "max_score": 10.0, "grand_total": "5.0/10.0", "lastAttemptedOn": t},
        {"attemptId": "att-2", "score": 8.0, "max_score": 10.0, "grand_total": "8.0/10.0",
         "lastAttemptedOn": t + 1000}]
    # Unscored and unknown contents read as empty.
    got = await read_scores(client, userId=user, collectionId="course-f", contextId="b-f", contentId=["nope"],
                            fields=["attempts"])
    assert got["nope"] == {"identifier": "nope", "score": None, "max_score": None, "attempts": 0,
                           "attemptDetails": []}


async def test_attempt_id_from_cdata_and_out_of_order_duplicate_events(client, app, user):
    t = now_ms() - 60_000
    events = [assess("q1", t + 5, 1, attempt="cd-1"), assess("q1", t, 0, attempt="cd-1"),
              assess("q2", t + 1, 1, attempt="cd-1"), assess("q2", t + 1, 1, attempt="cd-1")]
    st, body = await submit(client, userId=user, contentId="solo", assessments=events)
    assert st == 200, body
    [row] = await attempts_stored(app, user)
    assert (row.attempt_id, row.grand_total, len(row.questions)) == ("cd-1", "2.0/2.0", 2)
    assert row.collection_id == row.context_id == "solo"  # scope resolved like views


async def test_stale_and_identical_resubmissions_change_nothing(client, app, user):
    t = now_ms() - 60_000
    keys = dict(userId=user, collectionId="course-t", contentId="quiz")
    st, _ = await submit(client, **keys, attemptId="a", assessmentTs=t, assessments=[assess("q1", t, 1, 2)])
    [first] = await attempts_stored(app, user)
    [ucc] = await db_rows(app.state.app.views, user)
    for ts in (t - 1, t):  # older, then equal: skipped (strictly newer replaces)
        st, body = await submit(client, **keys, attemptId="a", assessmentTs=ts, assessments=[assess("q1", ts, 0, 2)])
        assert st == 200, body
    assert await attempts_stored(app, user) == [first]
    assert await db_rows(app.state.app.views, user) == [ucc]
    # Newer: replaced from its own events only, created_on kept.
    st, _ = await submit(client, **keys, attemptId="a", assessmentTs=t + 10, assessments=[assess("q2", t + 9, 2, 4)])
    [row] = await attempts_stored(app, user)
    assert (row.grand_total, row.created_on, row.last_attempted_on) == ("2.0/4.0", first.created_on, t + 10)
    assert [q["id"] for q in row.questions] == ["q2"]
    got = (await read_scores(client, **keys))["quiz"]
    assert (got["score"], got["max_score"], got["attempts"]) == (2.0, 4.0, 1)
    # No attempt id anywhere: derived from the events, so a retried request is the same attempt.
    events = [assess("q1", t + 20, 1, 2), assess("q2", t + 21, 1, 2)]
    for _ in range(2):
        st, _ = await submit(client, **keys, assessments=events)
        assert st == 200
    st, _ = await submit(client, **keys, assessments=list(reversed(events)))
    assert len(await attempts_stored(app, user)) == 2
    assert (await read_scores(client, **keys))["quiz"]["attempts"] == 2


async def test_concurrent_attempts_of_one_learner_lose_nothing(client, app, user):
    t = now_ms() - 60_000
    await put_collection(client, "course-as-c", leafNodes=["quiz"])
    keys = dict(userId=user, collectionId="course-as-c", contentId="quiz")
    scores = [3, 7, 1, 9, 4, 6, 2, 8, 5, 0]
    replies = await asyncio.gather(*(
        submit(client, **keys, attemptId=f"a{i}", assessmentTs=t + i, assessments=[assess("q", t + i, s, 10)])
        for i, s in enumerate(scores)))
    assert all(st == 200 for st, _ in replies), replies
    assert sorted(r.attempt_id for r in await attempts_stored(app, user)) == sorted(f"a{i}" for i in range(10))
    got = (await read_scores(client, **keys, fields=["attempts"]))["quiz"]
    assert (got["score"], got["max_score"], got["attempts"], len(got["attemptDetails"])) == (9.0, 10.0, 10, 10)
    [ucc] = await db_rows(app.state.app.views, user)
    assert (ucc["best_attempt_id"], ucc["attempts"]) == ("a3", 10)


@pytest.mark.settings(max_assess_events=3)
@pytest.mark.parametrize("change, field, code", [
    ({"assessments": []}, "request.assessments", "EMPTY_FIELD"),
    ({"assessments": None}, "request.assessments", "INVALID_TYPE"),
    ({"assessments": [assess("q", 0, -1)]}, "request.assessments.0.edata.score", "INVALID_SCORE"),
    ({"assessments": [assess("q", 0, "x")]}, "request.assessments.0.edata.score", "INVALID_SCORE"),
    ({"assessments": [assess("q", 0, 1), assess("r", 0, 3, 2)]}, "request.assessments.1.edata.score",
     "INVALID_SCORE"),
    ({"assessments": [assess("q", "future", 1)]}, "request.assessments.0.ets", "INVALID_EVENT"),
    ({"assessments": [assess(f"q{i}", 0, 1) for i in range(4)]}, "request.assessments", "TOO_MANY_EVENTS"),
    ({"assessments": [assess("q", 0, 1), {"events": [assess("q", 0, 1)]}]}, "request.assessments.1",
     "INVALID_REQUEST"),
    ({"assessments": [{"attemptId": "x", "events": []}]}, "request.assessments.0.events", "EMPTY_FIELD"),
    ({"assessments": [{"attemptId": "x", "events": [assess("q", 0, 1)] * 4}]}, "request.assessments.0.events",
     "TOO_MANY_EVENTS"),
    ({"assessments": [{"attemptId": "x", "events": [assess("q", 0, 9)]}]},
     "request.assessments.0.events.0.edata.score", "INVALID_SCORE"),
    ({"assessments": [{"attemptId": "x", "contentId": "other", "events": [assess("q", 0, 1)]}]},
     "request.assessments.0.contentId", "CONTENT_NOT_IN_COLLECTION"),
    ({"assessments": [{"userId": "someone-else", "events": [assess("q", 0, 1)]}]},
     "request.assessments.0.userId", "INVALID_REQUEST"),
    ({"contentId": "not-a-leaf"}, "request.contentId", "CONTENT_NOT_IN_COLLECTION"),
    ({"contentId": None}, "request.contentId", "MISSING_FIELD"),
    ({"assessmentTs": "future"}, "request.assessmentTs", "INVALID_REQUEST"),
])
async def test_invalid_submissions_are_refused_and_store_nothing(client, app, user, change, field, code):
    t = now_ms() - 60_000
    await put_collection(client, "course-v", leafNodes=["quiz"])
    future = now_ms() + 3_600_000

    def fix(v):  # 0 / "future" stand for a valid past time / one beyond the clock skew
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return t if v == 0 else future if v == "future" else v

    request = {"userId": user, "collectionId": "course-v", "contentId": "quiz",
               "assessments": [assess("q", t, 1)], **fix(change)}
    request = {k: v for k, v in request.items() if v is not None or k == "assessments"}
    st, body = await submit(client, **request)
    assert 400 <= st < 500, body
    assert body["id"] == "api.assessment.submit" and body["params"]["status"] == "failed"
    assert (body["result"]["field"], body["params"]["err"]) == (field, code)
    assert await attempts_stored(app, user) == [] and await db_rows(app.state.app.views, user) == []


async def test_an_unknown_collection_accepts_any_content(client, app, user):
    t = now_ms() - 60_000
    st, body = await submit(client, userId=user, collectionId="course-unknown", contentId="quiz",
                            assessments=[assess("q", t, 1)])
    assert st == 200, body


async def test_score_and_progress_aggregates_merge_never_wipe(client, app, user):
    t = now_ms() - 60_000
    await put_collection(client, "course-as-m", leafNodes=["a", "q1", "q2"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-as-m")
    await view(client, user, "a", "course-as-m")
    keys = dict(userId=user, collectionId="course-as-m")
    await submit(client, **keys, contentId="q1", attemptId="x", assessments=[assess("q", t, 3, 4)])

    async def course_agg():
        assert await wait_until(lambda: queue_empty(app, user))
        return next(a for a in await stored_aggs(app, user) if a.activity_type == "Course").aggregates

    agg = await course_agg()
    assert agg["completedCount"] == 1
    assert (agg["score:q1"], agg["max_score:q1"], agg["attempts_count:q1"]) == (3.0, 4.0, 1)
    # Another content's score keeps the first one and the completion count.
    await submit(client, **keys, contentId="q2", attemptId="y", assessments=[assess("q", t, 1, 2)])
    agg = await course_agg()
    assert agg["completedCount"] == 1 and agg["score:q1"] == 3.0 and agg["score:q2"] == 1.0
    # A progress recompute keeps the scores.
    await view(client, user, "q1", "course-as-m")
    agg = await course_agg()
    assert agg["completedCount"] == 2 and agg["score:q1"] == 3.0 and agg["attempts_count:q2"] == 1
    s = await summary(client, user, "course-as-m")
    assert s["assessmentStatus"] == {"q1": {"score": 3.0, "max_score": 4.0, "carried": False}, "q2": {"score": 1.0, "max_score": 2.0, "carried": False}}
    assert s["contentStatus"] == {"a": 2, "q1": 2, "q2": 1}


async def test_one_cert_reissue_per_best_score_change(client, app, user):
    t = now_ms() - 60_000
    await put_collection(client, "course-as-e", leafNodes=["quiz", "other"])
    await post(client, "/v1/enrol", userId=user, collectionId="course-as-e", contextId="course-as-e")
    keys = dict(userId=user, collectionId="course-as-e", contentId="quiz")

    async def attempt(aid, ts, score):
        st, body = await submit(client, **keys, attemptId=aid, assessmentTs=ts, assessments=[assess("q", ts, score, 10)])
        assert st == 200, body

    await attempt("a1", t, 5)  # best 5/10: one event
    await attempt("a1", t, 5)  # identical retry: none
    await attempt("a2", t + 1, 3)  # not better: none
    await attempt("a3", t + 2, 8)  # best 8/10: one event
    assert await wait_until(lambda: outbox_empty(app, user))
    assert await wait_until(lambda: _n(reissues(app, user), 2))
    await asyncio.sleep(0.2)
    got = reissues(app, user)
    assert [e["edata"]["attemptId"] for e in got] == ["a1", "a3"]
    e = got[-1]
    assert e["eid"] == "BE_JOB_REQUEST" and e["edata"]["action"] == "issue-certificate"
    assert e["edata"]["userIds"] == [user] and e["edata"]["courseId"] == "course-as-e"
    assert e["edata"]["batchId"] == "course-as-e" and e["object"]["id"] == "course-as-e_course-as-e"
    assert len({x["mid"] for x in got}) == 2


async def test_no_cert_reissue_without_an_active_enrolment(client, app, user):
    t = now_ms() - 60_000
    await put_collection(client, "course-ne", leafNodes=["quiz"])
    await submit(client, userId=user, collectionId="course-ne", contentId="quiz", assessments=[assess("q", t, 1)])
    assert await wait_until(lambda: queue_empty(app, user))
    assert await outbox_empty(app, user) and reissues(app, user) == []


async def test_erase_removes_attempts(client, app, user):
    t = now_ms() - 60_000
    await submit(client, userId=user, collectionId="course-as-x", contentId="quiz", assessments=[assess("q", t, 1)])
    r = await client.request("DELETE", f"/v1/summary/delete/{user}?all")
    assert r.status_code == 200 and r.json()["result"]["erased"]["assessment_aggregator"] == 1
    assert await attempts_stored(app, user) == []
    assert (await read_scores(client, userId=user, collectionId="course-as-x", contentId="quiz"))["quiz"]["score"] is None


async def _n(items, n):
    return len(items) >= n


async def test_openapi_documents_the_assessment_bodies(client):
    doc = (await client.get("/openapi.json")).json()
    for path, model in [("submit", "SubmitRequest"), ("read", "AssessmentReadRequest")]:
        body = doc["paths"][f"/v1/assessment/{path}"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
_edata = st.fixed_dictionaries({}, optional={"score": _values, "duration": _values, "item": st.fixed_dictionaries(
    {}, optional={"id": _values, "maxscore": _values, "params": _values})})
_events = st.fixed_dictionaries({}, optional={"eid": _values, "ets": _values, "edata": _edata, "context": _values})
_requests = st.fixed_dictionaries({"userId": st.just("fuzz-user"), "contentId": st.just("quiz")}, optional={
    "collectionId": _values, "attemptId": _values, "assessmentTs": _values,
    "assessments": st.lists(_events | st.fixed_dictionaries({"events": st.lists(_events, max_size=3)},
                                                            optional={"contentId": _values, "attemptId": _values}),
                            max_size=3) | _values})


@pytest.mark.parametrize("backend", ["sqlite"])
def test_random_submissions_never_get_a_500(client):
    loop = asyncio.get_event_loop()

    @hsettings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request=_requests)
    def check(request):
        r = loop.run_until_complete(client.post("/v1/assessment/submit", content=json.dumps({"request": request}),
                                                headers={"content-type": "application/json"}))
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert r.json()["params"]["err"] and "field" in r.json()["result"]

    check()


async def test_concurrent_submits_share_a_commit_and_a_bad_one_is_refused_alone(client, app, backend):
    """Concurrent submits of many learners are group-committed; one that cannot be stored (NUL,
    which PostgreSQL's JSONB refuses) gets its own 400 on both backends, naming the field, and the
    others are stored."""
    t = now_ms() - 60_000
    await put_collection(client, "course-as-g", leafNodes=["quiz"])
    users = [f"g-{backend}-{i}-{t}" for i in range(12)]

    def body(i, u):
        e = assess("q", t, 1)
        if i == 5:
            e["edata"]["item"]["title"] = "bad\u0000title"
        return dict(userId=u, collectionId="course-as-g", contentId="quiz", attemptId="a", assessments=[e])

    replies = await asyncio.gather(*(submit(client, **body(i, u)) for i, u in enumerate(users)))
    assert [i for i, (st, _) in enumerate(replies) if st != 200] == [5], replies
    st, b = replies[5]
    assert (b["params"]["err"], b["result"]["field"]) == ("INVALID_VALUE", "request.assessments.0.edata.item.title"), b
    for i, u in enumerate(users):
        got = (await read_scores(client, userId=u, collectionId="course-as-g", contentId="quiz"))["quiz"]
        assert got["attempts"] == (0 if i == 5 else 1)

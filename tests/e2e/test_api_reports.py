"""Course-wide reports through HTTP (roster, stats, CSV/JSON files, learner report, roles), on
SQLite and on PostgreSQL + Redis; the worker runs inside the app. Their pure rules:
tests/unit/test_domain_reports.py."""

import csv
import io
import time
import uuid

import jwt
import orjson
import pytest

from conftest import wait_until
from report_seed import Course, seed_course, stored

SECRET = "test-secret-that-is-long-enough-for-hs256"
JWT = pytest.mark.settings(auth="jwt", jwt_secret=SECRET)


def token(sub: str, *roles: str) -> dict:
    body = {"sub": sub, "exp": int(time.time()) + 86_400, "roles": list(roles)}  # ADMIN is made at import
    return {"Authorization": "Bearer " + jwt.encode(body, SECRET, algorithm="HS256")}


ADMIN = token("admin-1", "admin")


async def seeded(client, headers=None) -> Course:
    c = await seed_course(client, headers)
    assert await wait_until(lambda: stored(client, c, headers)), "the worker did not store the progress"
    return c


async def get(client, path, headers=None, **params) -> dict:
    r = await client.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


# -- roster --------------------------------------------------------------------------------------

async def test_roster_shows_every_enrolment_with_units_scores_and_access(client):
    c = await seeded(client)
    body = await get(client, f"/v1/report/context/{c.context}")
    assert body["id"] == "api.report.roster" and body["params"]["status"] == "success"
    res = body["result"]
    assert res["nextCursor"] is None and res["count"] == 4
    rows = {e["userId"]: e for e in res["enrolments"]}
    assert [e["userId"] for e in res["enrolments"]] == sorted(rows)  # (collectionId, userId) order
    done, half, none, gone = rows[c.done], rows[c.half], rows[c.none], rows[c.gone]
    assert (done["status"], done["progress"], done["active"]) == (2, 100, True)
    assert done["completedOn"] is not None and done["lastAccessTime"] >= done["enrolledDate"] - 60_000
    assert done["unitProgress"] == {"u1": 100, "u2": 100}
    assert done["assessments"] == {"quiz": {"score": 3.0, "maxScore": 4.0, "attempts": 1}}
    assert (half["status"], half["progress"], half["unitProgress"]) == (1, 25, {"u1": 50, "u2": 0})
    assert half["assessments"]["quiz"]["score"] == 1.0
    assert (none["status"], none["progress"], none["lastAccessTime"], none["assessments"]) == (0, 0, None, {})
    assert gone["active"] is False
    # Filters
    only = await get(client, f"/v1/report/context/{c.context}", status=2)
    assert [e["userId"] for e in only["result"]["enrolments"]] == [c.done]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    rng = await get(client, f"/v1/report/context/{c.context}", completedFrom=today, completedTo=today)
    assert [e["userId"] for e in rng["result"]["enrolments"]] == [c.done]
    before = await get(client, f"/v1/report/context/{c.context}", completedTo="2000-01-01")
    assert before["result"]["enrolments"] == []
    act = await get(client, f"/v1/report/context/{c.context}", active="false")
    assert [e["userId"] for e in act["result"]["enrolments"]] == [c.gone]
    found = await get(client, f"/v1/report/context/{c.context}", search="half-")
    assert [e["userId"] for e in found["result"]["enrolments"]] == [c.half]
    assert (await get(client, f"/v1/report/context/{c.context}", search="%"))["result"]["enrolments"] == []
    other = await get(client, f"/v1/report/context/{c.context}", collectionId="another")
    assert other["result"]["enrolments"] == []


async def test_paging_is_keyset_and_stays_correct_while_learners_enrol(client):
    c = await seeded(client)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 1} | ({"cursor": cursor} if cursor else {})
        res = (await get(client, f"/v1/report/context/{c.context}", **params))["result"]
        seen += [e["userId"] for e in res["enrolments"]]
        pages += 1
        if pages == 2:
            # Written meanwhile: one sorts before the pages read (not shown), one after (shown once).
            for u in ("aaa-" + uuid.uuid4().hex[:6], "zzz-" + uuid.uuid4().hex[:6]):
                r = await client.post("/v1/enrol", json={"request": {"userId": u, "collectionId": c.collection,
                                                                     "contextId": c.context}})
                assert r.status_code == 200
                late = u
        cursor = res["nextCursor"]
        if not cursor:
            break
    assert seen == sorted(set(seen)) and len(seen) == 5 and seen[-1] == late


async def test_roster_csv_and_json_files_hold_the_whole_roster(client):
    c = await seeded(client)
    r = await client.get(f"/v1/report/context/{c.context}", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "private, no-store"
    rows = list(csv.DictReader(io.StringIO(r.text)))
    by_user = {row["userId"]: row for row in rows}
    assert set(by_user) == {c.done, c.half, c.none, c.gone}
    assert by_user[c.done]["status"] == "2" and by_user[c.done]["progress"] == "100"
    assert by_user[c.done]["completedOnIso"].endswith("Z") and by_user[c.gone]["active"] == "false"
    assert orjson.loads(by_user[c.half]["unitProgress"]) == {"u1": 50, "u2": 0}
    assert orjson.loads(by_user[c.done]["assessments"])["quiz"]["score"] == 3.0
    j = await client.get(f"/v1/report/context/{c.context}", params={"format": "json", "status": "0", "active": "true"})
    assert j.status_code == 200
    doc = j.json()
    assert doc["contextId"] == c.context and [e["userId"] for e in doc["enrolments"]] == [c.none]


async def test_stats_count_statuses_progress_completions_and_scores(client):
    c = await seeded(client)
    s = (await get(client, f"/v1/report/context/{c.context}/stats", passPercent=50))["result"]
    assert s["byStatus"] == {"0": 1, "1": 1, "2": 1} and s["enrolled"] == 3 and s["unenrolled"] == 1
    hist = {b["bucket"]: b["count"] for b in s["progressHistogram"]}
    assert hist["0"] == 1 and hist["21-30"] == 1 and hist["100"] == 1 and sum(hist.values()) == 3
    assert s["completed"] == 1 and sum(d["count"] for d in s["completionsPerDay"]) == 1
    roster = (await get(client, f"/v1/report/context/{c.context}", status=2))["result"]["enrolments"]
    done_on = roster[0]["completedOn"]
    assert s["completionsPerDay"] == [{"date": time.strftime("%Y-%m-%d", time.gmtime(done_on / 1000)), "count": 1}]
    assert s["medianTimeToCompleteMs"] is not None and s["medianTimeToCompleteMs"] >= 0
    [q] = s["assessments"]
    assert (q["contentId"], q["name"], q["learners"], q["attempts"]) == ("quiz", "Quiz", 2, 2)
    assert (q["meanScore"], q["medianScore"], q["maxScore"]) == (2.0, 2.0, 4.0)
    assert (q["meanPercent"], q["medianPercent"], q["passCount"]) == (50.0, 50.0, 1)
    strict = (await get(client, f"/v1/report/context/{c.context}/stats", passPercent=80))["result"]
    assert strict["assessments"][0]["passCount"] == 0
    meta = s["collections"][c.collection]
    assert meta["units"] == [{"unitId": "u1", "name": "Unit one"}, {"unitId": "u2", "name": "Unit two"}]
    # Days are counted in the caller's zone.
    east = (await get(client, f"/v1/report/context/{c.context}/stats", utcOffsetMinutes=840))["result"]
    assert east["utcOffsetMinutes"] == 840
    assert east["completionsPerDay"] == [{"date": time.strftime("%Y-%m-%d", time.gmtime(done_on / 1000 + 840 * 60)),
                                          "count": 1}]


async def test_stats_reflect_a_completion_once_the_worker_stores_it(client):
    c = await seeded(client)
    for content in ("a", "b", "c", "quiz"):
        for op in ("start", "end"):
            r = await client.post(f"/v1/view/{op}", json={"request": {"userId": c.none, "contentId": content,
                                                                      "collectionId": c.collection,
                                                                      "contextId": c.context}})
            assert r.status_code == 200

    async def two_done():
        s = (await get(client, f"/v1/report/context/{c.context}/stats"))["result"]
        return s["byStatus"]["2"] == 2

    assert await wait_until(two_done)


async def test_learner_report_has_units_contents_scores_and_recent(client):
    c = await seeded(client)
    r = (await get(client, f"/v1/report/learner/{c.half}"))["result"]
    [e] = r["enrolments"]
    assert e["progress"] == 25 and [u["progress"] for u in e["units"]] == [50, 0]
    assert e["units"][0]["name"] == "Unit one"
    assert {x["contentId"]: x["status"] for x in e["contents"]} == {"a": 2, "b": 0, "c": 0, "quiz": 1}
    assert e["assessmentStatus"]["quiz"]["score"] == 1.0
    assert [x["contentId"] for x in r["recent"]] == ["a"] and r["recent"][0]["name"] == "Intro video"


async def test_contexts_by_prefix(client):
    c = await seeded(client)
    found = (await get(client, "/v1/report/contexts", prefix=c.context[:10]))["result"]["contexts"]
    assert c.context in [x["contextId"] for x in found]
    assert (await get(client, "/v1/report/contexts", prefix="no-such-%"))["result"]["contexts"] == []


@pytest.mark.parametrize("path,params,field", [
    ("/v1/report/context/{ctx}", {"limit": "0"}, "limit"),
    ("/v1/report/context/{ctx}", {"limit": "x"}, "limit"),
    ("/v1/report/context/{ctx}", {"status": "3"}, "status"),
    ("/v1/report/context/{ctx}", {"cursor": "bm9wZQ"}, "cursor"),
    ("/v1/report/context/{ctx}", {"completedFrom": "soon"}, "completedFrom"),
    ("/v1/report/context/{ctx}", {"completedTo": "99999999999999999999999"}, "completedTo"),
    ("/v1/report/context/{ctx}", {"format": "xlsx"}, "format"),
    ("/v1/report/context/{ctx}", {"active": "maybe"}, "active"),
    ("/v1/report/context/{ctx}/stats", {"passPercent": "101"}, "passPercent"),
    ("/v1/report/context/{ctx}/stats", {"passPercent": "lots"}, "passPercent"),
    ("/v1/report/context/{ctx}/stats", {"utcOffsetMinutes": "900"}, "utcOffsetMinutes"),
])
async def test_bad_parameters_get_400_with_the_field(client, path, params, field):
    r = await client.get(path.format(ctx="any-context"), params=params)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["params"]["err"] == "INVALID_VALUE" and body["result"]["field"] == field
    assert body["id"] == "api.report"


async def test_unknown_context_is_404(client):
    for path in ("/v1/report/context/nope-{u}", "/v1/report/context/nope-{u}/stats"):
        r = await client.get(path.format(u=uuid.uuid4().hex), params={"format": "csv"} if "stats" not in path else {})
        assert r.status_code == 404 and r.json()["params"]["err"] == "CONTEXT_NOT_FOUND"


@JWT
async def test_reports_need_an_admin_or_report_role(client):
    c = await seeded(client, ADMIN)
    paths = [f"/v1/report/context/{c.context}", f"/v1/report/context/{c.context}/stats", "/v1/report/contexts"]
    for path in paths:
        r = await client.get(path, headers=token(c.done))
        assert r.status_code == 403 and r.json()["params"]["err"] == "FORBIDDEN", path
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers=token("mentor-1", "COURSE_MENTOR"))).status_code == 200
        assert (await client.get(path, headers=ADMIN)).status_code == 200
    # A learner reads their own report, not another's; a mentor reads anyone's.
    assert (await client.get(f"/v1/report/learner/{c.done}", headers=token(c.done))).status_code == 200
    r = await client.get(f"/v1/report/learner/{c.half}", headers=token(c.done))
    assert r.status_code == 403 and r.json()["result"]["field"] == "userId"
    assert (await client.get(f"/v1/report/learner/{c.half}", headers=token("m", "mentor"))).status_code == 200
    me = (await get(client, "/v1/report/me", token(c.done)))["result"]
    assert me == {"userId": c.done, "roles": [], "auth": "jwt", "reports": False}
    assert (await get(client, "/v1/report/me", token("m", "COURSE_MENTOR")))["result"]["reports"] is True


@JWT
@pytest.mark.settings(auth="jwt", jwt_secret=SECRET, report_roles="coach")
async def test_report_roles_are_configurable(client):
    c = await seeded(client, ADMIN)
    path = f"/v1/report/context/{c.context}/stats"
    assert (await client.get(path, headers=token("m", "COURSE_MENTOR"))).status_code == 403
    assert (await client.get(path, headers=token("k", "coach"))).status_code == 200


NASTY = ["\x00", "%", "'; drop table enrolment; --", "é" * 300, "9" * 30, "-1", "1e309", "nan", " ", "[]"]


async def test_odd_parameter_values_never_get_a_500(client):
    c = await seeded(client)
    for name in ("collectionId", "status", "completedFrom", "completedTo", "active", "search", "cursor", "limit",
                 "passPercent", "utcOffsetMinutes", "prefix", "format"):
        for value in NASTY:
            for path in (f"/v1/report/context/{c.context}", f"/v1/report/context/{c.context}/stats",
                         "/v1/report/contexts"):
                r = await client.get(path, params={name: value})
                assert r.status_code in (200, 400, 404), (path, name, value, r.text)
                if r.status_code != 200:
                    assert r.json()["params"]["status"] == "failed"

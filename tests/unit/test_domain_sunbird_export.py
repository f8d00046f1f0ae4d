"""Sunbird rows onto ours: column names old and new, values, rejects, merges (pure rules)."""

import orjson
import pytest

from viewer_service.domain import sunbird_export as sunbird
from viewer_service.domain.scope import ContextMode
from viewer_service.domain.sunbird_export import Header, Reject

NOW = 1_700_000_000_000
T = 1624426660575


def rec(table: str, **values) -> dict:
    h = Header(table, list(values))
    return h.record(list(values.values()))


def test_old_and_new_column_names_are_one_column():
    h = Header("user_content_consumption", ["userid", "collectionid", "contextid", "contentid", "lastaccesstime",
                                            "last_access_time"])
    r = h.record(["u", "c", "b", "x", "", "2021-06-23 05:37:40.575000+0000"])
    assert r["courseid"] == "c" and r["batchid"] == "b" and r["lastaccesstime"] == "2021-06-23 05:37:40.575000+0000"
    r = h.record(["u", "c", "b", "x", "2021-06-23 05:37:40:575+0000", ""])
    assert r["lastaccesstime"] == "2021-06-23 05:37:40:575+0000"
    with pytest.raises(Reject, match="3 fields"):
        h.record(["u", "c", "b"])
    with pytest.raises(Reject, match="no contentid"):
        Header("user_content_consumption", ["userid", "courseid"])


def test_a_completed_consumption_row():
    r = rec("user_content_consumption", userid="u", courseid="c", batchid="b", contentid="x", status="2",
            progress="40", viewcount="3", lastaccesstime="2021-06-23 05:37:40:575+0000",
            progressdetails='{"position": 12}', last_updated_time="2021-06-23 05:37:41.575000+0000")
    row = dict(zip(sunbird.UCC_COLUMNS, sunbird.consumption_row(r, ContextMode.STRICT, NOW)))
    assert row["collection_id"] == "c" and row["context_id"] == "b"
    assert row["status"] == 2 and row["progress"] == 100  # a completed view is at 100, as a live end leaves it
    assert row["last_completed_time"] == T + 1000  # none exported: its last update
    assert row["first_access_time"] == T and row["last_access_time"] == T and row["view_count"] == 3
    assert orjson.loads(row["progress_details"]) == {"position": 12} and row["progress_details_ts"] == T


def test_an_in_progress_row_and_the_context_modes():
    r = rec("user_content_consumption", userid="u", courseid="c", batchid="", contentid="x", status="1",
            progress="140", datetime="2021-06-23 05:37:40.575000+0000", lastcompletedtime="2021-06-23 05:37:40:575+0000")
    strict = sunbird.consumption_row(r, ContextMode.STRICT, NOW)
    assert strict[1:3] == ("c", "c")  # no batch: the collection's own context
    assert strict[5] == 100 and strict[12] is None  # progress clamped; no completion time while unfinished
    assert sunbird.consumption_row(r, ContextMode.CONTENT, NOW)[1:3] == ("x", "x")
    assert sunbird.consumption_row(r, ContextMode.COLLECTION, NOW)[1:3] == ("c", "c")


@pytest.mark.parametrize("change, reason", [
    ({"userid": ""}, "userid is empty"),
    ({"status": "7"}, "status 7"),
    ({"status": "x"}, "status: not an integer"),
    ({"progressdetails": "{oops"}, "progressdetails is not JSON"),
    ({"lastaccesstime": "tuesday"}, "lastaccesstime: not a timestamp"),
    ({"contentid": "x" * 300}, "longer than 256"),
])
def test_consumption_rejects(change, reason):
    values = {"userid": "u", "courseid": "c", "batchid": "b", "contentid": "x", "status": "1",
              "progressdetails": "", "lastaccesstime": ""}
    values.update(change)
    with pytest.raises(Reject, match=reason):
        sunbird.consumption_row(rec("user_content_consumption", **values), ContextMode.STRICT, NOW)


def test_an_enrolment_with_certificates():
    r = rec("user_enrolments", userid="u", courseid="c", batchid="b", active="True", status="2", progress="3",
            completedon="2021-06-23 05:37:40.575000+0000", contentstatus="{'x': 2, 'y': 2, 'z': 2}",
            enrolleddate="2021-06-20 05:37:40:575+0000",
            issued_certificates="[{'identifier': 'cert1', 'name': 'Completion', 'token': 'T'}]",
            certificates="[{'id': 'old', 'name': 'Old'}]")
    enrolment, agg = sunbird.enrolment_row(r, NOW)
    e = dict(zip(sunbird.ENROL_COLUMNS, enrolment))
    assert e["status"] == 2 and e["progress"] == 100 and e["completed_on"] == T and e["active"] is True
    assert e["enrolled_date"] == T - 3 * 86_400_000
    assert [c["id"] for c in orjson.loads(e["issued_certificates"])] == ["cert1", "old"]
    a = dict(zip(sunbird.AGG_COLUMNS, agg))
    assert orjson.loads(a["aggregates"]) == {"completedCount": 3}  # Sunbird's progress is a count
    assert orjson.loads(a["content_status"]) == {"x": 2, "y": 2, "z": 2} and a["status"] == 2


def test_an_in_progress_enrolment_keeps_its_percentage_when_exported():
    r = rec("user_enrolments", userid="u", courseid="c", batchid="b", status="1", progress="2",
            completionpercentage="40", contentstatus="", active="False", datetime="2021-06-23 05:37:40.575000+0000")
    e = dict(zip(sunbird.ENROL_COLUMNS, sunbird.enrolment_row(r, NOW)[0]))
    assert e["progress"] == 40 and e["completed_on"] is None and e["active"] is False and e["enrolled_date"] == T
    bad = rec("user_enrolments", userid="u", courseid="c", batchid="b", contentstatus="{'x': 'done'}")
    with pytest.raises(Reject, match="contentstatus"):
        sunbird.enrolment_row(bad, NOW)


def test_an_assessment_attempt():
    q = ("[{id: 'q1', assess_ts: '2021-06-23 05:37:40.575000+0000', max_score: 2.0, score: 1.0, type: 'mcq', "
         "title: 'T', resvalues: [{'1': '{\"a\":1}'}], params: [], description: null, duration: 4}]")
    r = rec("assessment_aggregator", course_id="c", batch_id="b", user_id="u", content_id="x", attempt_id="a1",
            created_on="2021-06-23 05:37:40.575000+0000", last_attempted_on="2021-06-23 05:37:40.575000+0000",
            question=q, total_score="1.0", total_max_score="2.0", grand_total="1.0/2.0", updated_on="")
    row = dict(zip(sunbird.ASSESS_COLUMNS, sunbird.assessment_row(r, ContextMode.STRICT, NOW)))
    assert row["total_score"] == 1.0 and row["total_max_score"] == 2.0 and row["last_attempted_on"] == T
    [question] = orjson.loads(row["questions"])
    assert question["id"] == "q1" and question["assess_ts"] == T and question["resvalues"] == [{"1": '{"a":1}'}]
    no_total = rec("assessment_aggregator", course_id="c", batch_id="b", user_id="u", content_id="x",
                   attempt_id="a1", last_attempted_on="2021-06-23 05:37:40.575000+0000", question=q)
    row = dict(zip(sunbird.ASSESS_COLUMNS, sunbird.assessment_row(no_total, ContextMode.STRICT, NOW)))
    assert (row["total_score"], row["grand_total"]) == (1.0, "1.0/2.0")  # from the questions
    with pytest.raises(Reject, match="last_attempted_on"):
        sunbird.assessment_row(rec("assessment_aggregator", course_id="c", batch_id="b", user_id="u",
                                   content_id="x", attempt_id="a1"), ContextMode.STRICT, NOW)


def test_activity_rows():
    r = rec("user_activity_agg", activity_type="Course", activity_id="c", user_id="u", context_id="cb:b",
            agg="{'completedCount': 2}", aggregates="{'score:x': 1.5}")
    assert sunbird.activity_agg_row(r) == ("u", "c", "b", {"completedCount": 2, "score:x": 1.5})


def test_merges_never_go_down():
    r = rec("user_content_consumption", userid="u", courseid="c", batchid="b", contentid="x", status="2",
            lastaccesstime="2021-06-23 05:37:40:575+0000")
    done = sunbird.consumption_row(r, ContextMode.STRICT, NOW)
    r2 = rec("user_content_consumption", userid="u", courseid="c", batchid="b", contentid="x", status="1",
             progress="30", lastaccesstime="2021-06-24 05:37:40:575+0000")
    later = sunbird.consumption_row(r2, ContextMode.STRICT, NOW)
    m = sunbird.merge_consumption(done, later)
    assert m[4] == 2 and m[5] == 100 and m[10] == T and m[11] == T + 86_400_000 and m[12] == T
    assert sunbird.merge_consumption(later, done)[4:6] == (2, 100)

    old = ("u", "c", "b", T, True, [{"id": "a"}], 2, 100, T)
    new = ("u", "c", "b", T - 5, False, [{"id": "a", "x": 1}, {"id": "b"}], 1, 50, None, NOW)
    m = sunbird.merge_enrolment(old, new, NOW)
    assert m == ("u", "c", "b", T - 5, True, [{"id": "a"}, {"id": "b"}], 2, 100, T, NOW)
    assert sunbird.merge_enrolment(old, ("u", "c", "b", T, False, [], 0, 0, None, NOW), NOW) is None


def test_the_mapper_reads_records_as_consumption_row_reads_dicts():
    """The import's hot path (fields by index, old and new names, absent columns) gives what the
    dict-based rule gives, rejects included."""
    names = ["userid", "courseid", "batchid", "contentid", "status", "progress", "lastaccesstime",
             "last_access_time", "lastupdatedtime", "last_updated_time", "progressdetails", "viewcount"]
    h = Header("user_content_consumption", names)
    row = sunbird.consumption_mapper(h, ContextMode.STRICT, NOW)
    records = [
        ["u", "c", "b", "x", "2", "40", "2021-06-23 05:37:40:575+0000", "", "", "2021-06-23 05:37:41.575000+0000",
         '{"p": 1}', "3"],
        ["u", "c", "", "y", "1", "30", "", "2021-06-23 05:37:40.575000+0000", "2021-06-23 05:37:40:575+0000",
         "2021-06-24 05:37:40.575000+0000", "", ""],
    ]
    for fields in records:
        assert row(fields) == sunbird.consumption_row(h.record(fields), ContextMode.STRICT, NOW)
    assert row(records[0])[11] == T and row(records[1])[11] == T and row(records[1])[13] == T  # first non-empty
    with pytest.raises(Reject, match="11 fields"):
        row(records[0][:-1])
    with pytest.raises(Reject, match="lastaccesstime: not a timestamp"):
        row([*records[0][:6], "tuesday", *records[0][7:]])

"""The assessment rules (pure), including reference scenarios 17, 18, 21, 22 and 23."""

import pytest

from viewer_service.domain.assessments import (StoredAttempt, best_attempt, cdata_attempt_id, derived_attempt_id,
                                               format_total, grand_total, parse_event, replaces, score_aggregates,
                                               score_attempt, unique_questions)
from viewer_service.api.errors import http_status
from viewer_service.domain.views import ContentView, RowKey
from viewer_service.errors import ContentNotInCollection, InvalidEvent, InvalidScore

T0 = 1_700_000_000_000
MIN, MAX = 946_684_800_000, T0 + 300_000


def assess(qid, ets, score, maxscore=1, **edata):
    return {"eid": "ASSESS", "ets": ets, "edata": {"score": score, "duration": 2, "resvalues": [{"1": "a"}],
                                                   "item": {"id": qid, "maxscore": maxscore, "type": "mcq",
                                                            "title": f"Q {qid}", "desc": "d", "params": []},
                                                   **edata}}


def parse(events):
    return [parse_event(e, f"request.assessments.{i}", MIN, MAX) for i, e in enumerate(events)]


def test_scenario_17_latest_event_per_question():
    qs = unique_questions(parse([assess("q1", 1000 + T0, 2, 5), assess("q2", 1500 + T0, 5, 5),
                                 assess("q1", 2000 + T0, 4, 5)]))
    assert {(q.id, q.assess_ts - T0, q.score) for q in qs} == {("q1", 2000, 4.0), ("q2", 1500, 5.0)}
    # Out of order: the latest by ets still wins; a duplicate is counted once.
    qs = unique_questions(parse([assess("q1", 2000 + T0, 4, 5), assess("q1", 1000 + T0, 2, 5),
                                 assess("q1", 2000 + T0, 4, 5)]))
    assert [(q.id, q.score) for q in qs] == [("q1", 4.0)]


def test_scenario_18_totals_and_grand_total():
    a = score_attempt("a", T0, parse([assess("q1", T0, 2, 5), assess("q2", T0, 3, 5)]))
    assert (a.total_score, a.total_max_score, a.grand_total) == (5.0, 10.0, "5.0/10.0")
    a = score_attempt("a", T0, parse([assess("q1", T0, 1, 1), assess("q2", T0, 0.33, 1)]))
    assert a.grand_total == "1.33/2.0"
    q = a.questions[0].as_json()
    assert q == {"id": "q1", "score": 1.0, "max_score": 1.0, "type": "mcq", "title": "Q q1", "description": "d",
                 "resvalues": [{"1": "a"}], "params": [], "duration": 2.0, "assess_ts": T0}


@pytest.mark.parametrize("x, text", [(0, "0.0"), (2, "2.0"), (10, "10.0"), (1.33, "1.33"), (0.125, "0.12"),
                                     (0.135, "0.14"), (1.005, "1.0"), (2.5, "2.5"), (123456.789, "123456.79")])
def test_decimal_format_like_java(x, text):
    assert format_total(x) == text
    assert grand_total(x, 3) == f"{text}/3.0"


def test_flat_events_are_accepted():
    [q] = parse([{"questionId": "q9", "score": 1, "maxScore": 2, "timestamp": T0, "questionType": "ftb",
                  "title": "t", "description": "d", "resvalues": [], "params": [], "duration": 1.5}])
    assert (q.id, q.score, q.max_score, q.type, q.duration, q.assess_ts) == ("q9", 1.0, 2.0, "ftb", 1.5, T0)
    [q] = parse([{"identifier": "q8", "ets": T0}])  # missing numbers are 0, as in Sunbird
    assert (q.id, q.score, q.max_score) == ("q8", 0.0, 0.0)


@pytest.mark.parametrize("event, field, error", [
    (assess("q", T0, -1), "request.assessments.0.edata.score", InvalidScore),
    (assess("q", T0, "1"), "request.assessments.0.edata.score", InvalidScore),
    (assess("q", T0, True), "request.assessments.0.edata.score", InvalidScore),
    (assess("q", T0, 2, 1), "request.assessments.0.edata.score", InvalidScore),
    (assess("q", T0, 1, -1), "request.assessments.0.edata.item.maxscore", InvalidScore),
    (assess("q", T0, 10**400, 10**401), "request.assessments.0.edata.score", InvalidScore),
    (assess("q", MAX + 1, 1), "request.assessments.0.ets", InvalidEvent),
    (assess("q", 1_700_000_000, 1), "request.assessments.0.ets", InvalidEvent),  # seconds, not ms
    (assess("q", None, 1), "request.assessments.0.ets", InvalidEvent),
    (assess("", T0, 1), "request.assessments.0.edata.item.id", InvalidEvent),
    ({**assess("q", T0, 1), "eid": "INTERACT"}, "request.assessments.0.eid", InvalidEvent),
    ({"eid": "ASSESS", "ets": T0, "edata": {"score": 1}}, "request.assessments.0.edata.item", InvalidEvent),
    ({"questionId": "q", "timestamp": T0, "score": 2, "maxScore": 1}, "request.assessments.0.score", InvalidScore),
    ([1], "request.assessments.0", InvalidEvent),
])
def test_invalid_events_name_the_field(event, field, error):
    with pytest.raises(error) as e:
        parse([event])
    assert e.value.field == field


def test_attempt_id_from_cdata_or_derived():
    e1 = {**assess("q1", T0, 1), "context": {"cdata": [{"type": "AttemptId", "id": "att-1"}]}}
    e2 = {**assess("q2", T0, 1), "context": {"cdata": [{"type": "Other", "id": "x"}]}}
    assert cdata_attempt_id([e1, e2], "request.assessments") == "att-1"
    assert cdata_attempt_id([e2], "request.assessments") is None
    e3 = {**assess("q3", T0, 1), "context": {"cdata": [{"type": "AttemptId", "id": "att-2"}]}}
    with pytest.raises(InvalidEvent) as e:
        cdata_attempt_id([e1, e2, e3], "request.assessments")
    assert e.value.field == "request.assessments.2.context.cdata"
    qs = parse([assess("q1", T0, 1), assess("q2", T0 + 1, 0)])
    same = derived_attempt_id("u", "c", "b", "q", list(reversed(qs)))
    assert derived_attempt_id("u", "c", "b", "q", qs) == same  # order does not matter: a retry is the same
    assert derived_attempt_id("u", "c", "b", "q", qs[:1]) != same
    assert derived_attempt_id("u2", "c", "b", "q", qs) != same


def test_scenario_21_only_a_strictly_newer_resubmission_replaces():
    stored = StoredAttempt("a", 5000, 1.0, 2.0)
    assert not replaces(stored, 4999) and not replaces(stored, 5000)
    assert replaces(stored, 5001) and replaces(None, 0)


def test_scenario_22_replaced_attempt_then_second_attempt():
    first = score_attempt("8cd87e", T0, parse([assess("q1", T0, 1), assess("q2", T0, 0), assess("q3", T0, 0)]))
    latest = score_attempt("8cd87e", T0 + 10, parse([assess("q1", T0 + 5, 1), assess("q2", T0 + 5, 1),
                                                      assess("q3", T0 + 5, 0)]))
    assert first.grand_total == "1.0/3.0" and replaces(StoredAttempt("8cd87e", first.assessment_ts, 1, 3),
                                                        latest.assessment_ts)
    second = score_attempt("9dd87e", T0 + 20, parse([assess("q1", T0 + 20, 1), assess("q2", T0 + 20, 0.33),
                                                      assess("q3", T0 + 20, 0)]))
    assert (latest.grand_total, second.grand_total) == ("2.0/3.0", "1.33/3.0")
    stored = [StoredAttempt(a.attempt_id, a.assessment_ts, a.total_score, a.total_max_score) for a in (latest, second)]
    best = best_attempt(stored)
    assert (best.attempt_id, best.total_score, best.total_max_score) == ("8cd87e", 2.0, 3.0)
    row = ContentView(RowKey("u", "c", "b", "do_212686723743318016173"), best_score=2.0, best_max_score=3.0,
                      best_attempt_id="8cd87e", attempts=2)
    assert score_aggregates([row]) == {"score:do_212686723743318016173": 2.0,
                                       "max_score:do_212686723743318016173": 3.0,
                                       "attempts_count:do_212686723743318016173": 2}


def test_scenario_23_best_of_two():
    best = best_attempt([StoredAttempt("a1", T0, 5, 10), StoredAttempt("a2", T0 + 1, 8, 10)])
    assert (best.attempt_id, best.total_score, best.total_max_score) == ("a2", 8, 10)


def test_best_attempt_is_by_fraction_then_raw_score_then_newest():
    # Sunbird would keep 6/10 (the higher raw total); we keep 4/5 (80 % beats 60 %).
    assert best_attempt([StoredAttempt("a", T0, 6, 10), StoredAttempt("b", T0, 4, 5)]).attempt_id == "b"
    assert best_attempt([StoredAttempt("a", T0, 1, 2), StoredAttempt("b", T0 - 1, 2, 4)]).attempt_id == "b"
    assert best_attempt([StoredAttempt("a", T0 + 1, 2, 4), StoredAttempt("b", T0, 2, 4)]).attempt_id == "a"
    assert best_attempt([StoredAttempt("a", T0, 0, 0), StoredAttempt("b", T0 - 1, 0, 1)]).attempt_id == "a"
    assert best_attempt([]) is None


def test_unscored_rows_have_no_aggregates():
    assert score_aggregates([ContentView(RowKey("u", "c", "b", "x"))]) == {}


def test_content_not_in_collection_is_a_400():
    assert http_status(ContentNotInCollection("m")) == 400 and ContentNotInCollection.code == "CONTENT_NOT_IN_COLLECTION"

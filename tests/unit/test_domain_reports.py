"""The pure rules of the course reports (domain/reports.py): buckets, cursors, times, medians."""

import pytest

from viewer_service.domain.reports import (assessment_summary, bucket, decode_cursor, encode_cursor, histogram,
                                          parse_time, per_day, weighted_median)


def test_buckets_and_histogram():
    assert [bucket(p) for p in (0, 1, 10, 11, 90, 91, 99, 100)] == ["0", "1-10", "1-10", "11-20", "81-90", "91-99",
                                                                     "91-99", "100"]
    h = histogram({0: 2, 5: 1, 100: 3})
    assert list(h)[0] == "0" and list(h)[-1] == "100" and len(h) == 12 and sum(h.values()) == 6


def test_cursor_round_trip_and_garbage():
    assert decode_cursor(encode_cursor("c,1", "u\"2")) == ("c,1", "u\"2")
    for bad in ("x", "e30", encode_cursor("a", "b")[:-2] + "!!"):
        with pytest.raises(Exception) as e:
            decode_cursor(bad)
        assert e.value.field == "cursor"


def test_times_and_days():
    assert parse_time("86400000", "f") == 86_400_000
    assert parse_time("1970-01-02", "f") == 86_400_000
    assert parse_time("1970-01-02", "f", end=True) == 2 * 86_400_000
    assert parse_time("1970-01-01T00:00:01Z", "f") == 1000
    with pytest.raises(Exception):
        parse_time("yesterday", "f")
    assert per_day({3: 1, 5: 2}) == [{"date": "1970-01-04", "count": 1}, {"date": "1970-01-05", "count": 0},
                                     {"date": "1970-01-06", "count": 2}]


def test_weighted_median_and_assessment_summary():
    assert weighted_median([]) is None
    assert weighted_median([(5, 1)]) == 5
    assert weighted_median([(1, 1), (3, 1)]) == 2
    assert weighted_median([(9, 1), (1, 2), (3, 1)]) == 2  # 1 1 3 9
    assert weighted_median([(1, 3), (9, 1)]) == 1
    assert weighted_median([(2, 0), (7, 2)]) == 7
    rows = [("c", "q", 3.0, 4.0, 1, 2), ("c", "q", 1.0, 4.0, 2, 2), ("c", "z", 0.0, None, 1, 1)]
    q, z = assessment_summary(rows, 50)
    assert (q["learners"], q["attempts"], q["medianScore"], q["maxScore"], q["passCount"]) == (3, 4, 1.0, 4.0, 1)
    assert q["meanScore"] == 5 / 3 and q["meanPercent"] == 125 / 3 and q["medianPercent"] == 25.0
    assert (z["meanPercent"], z["maxScore"], z["passCount"]) == (0.0, None, 0)

"""lms-service compatibility rules (domain/sunbird.py) and the state update merge (domain/views.py)."""

from __future__ import annotations

import pytest

from viewer_service.domain.sunbird import completed_count, format_date, last_read, list_order, list_status, parse_date
from viewer_service.domain.views import End, RowKey, Start, StateUpdate, ViewEntry, apply
from viewer_service.errors import SunbirdError

K = RowKey("u", "c", "b", "x")
T = 1_700_000_000_000


def test_dates_round_trip_in_sunbird_format():
    assert format_date(parse_date("2020-11-23 12:58:35:179+0000", "f")) == "2020-11-23 12:58:35:179+0000"
    assert format_date(parse_date("2020-11-23 18:28:35:179+0530", "f")) == "2020-11-23 12:58:35:179+0000"
    assert parse_date(None, "f") is None and parse_date("", "f") is None and format_date(None) is None


@pytest.mark.parametrize("bad", ["2020-11-23T12:58:35Z", "2020-13-23 12:58:35:179+0000", 1606136315179, "x"])
def test_bad_dates_are_date_format_errors(bad):
    with pytest.raises(SunbirdError) as e:
        parse_date(bad, "request.contents.0.lastAccessTime")
    assert e.value.code == "DATE_FORMAT_ERRROR" and e.value.field == "request.contents.0.lastAccessTime"


def test_state_update_creates_and_keeps_progress():
    row = apply(None, StateUpdate(K, T, 1, 50), T + 5)
    assert (row.status, row.progress, row.view_count, row.last_access_time) == (1, 50, 1, T)
    assert row.last_completed_time is None


def test_state_update_never_goes_down_and_keeps_first_completion():
    row = apply(None, StateUpdate(K, T, 2, completed_ts=T - 10), T)
    assert (row.status, row.progress, row.last_completed_time) == (2, 100, T - 10)
    row = apply(row, StateUpdate(K, T + 1, 1, 5), T + 1)
    assert (row.status, row.progress, row.last_completed_time) == (2, 100, T - 10)
    row = apply(row, StateUpdate(K, T + 2, 2, completed_ts=T + 2), T + 2)
    assert row.last_completed_time == T - 10
    row = apply(row, StateUpdate(K, T - 100, 2), T + 3)  # an older access time is not kept as the last
    assert row.last_access_time == T + 2 and row.first_access_time == T - 100


def test_state_update_status_is_clamped_and_versions_grow():
    row = apply(None, StateUpdate(K, T, 7), T)
    assert row.status == 2 and row.progress == 100
    again = apply(row, StateUpdate(K, T, 2), T)
    assert again.version > row.version


def test_state_update_on_a_started_view_and_end_after_it():
    started = apply(None, Start(K, T), T)
    row = apply(started, StateUpdate(K, T + 1, 1, 30, {"page": 3}), T + 1)
    assert (row.status, row.progress, row.progress_details, row.view_count) == (1, 30, {"page": 3}, 1)
    older = apply(row, StateUpdate(K, T, 1, None, {"page": 1}), T + 2)
    assert older.progress_details == {"page": 3}  # the newest details by client time win
    ended = apply(row, End(K, T + 5), T + 5)
    assert ended.status == 2 and ended.last_completed_time == T + 5


def test_list_status_and_count():
    assert list_status(0, 0) == (0, 0)
    assert list_status(1, 33) == (1, 33)
    assert list_status(2, 80) == (2, 100)  # completed stays completed (Sunbird flips it back)
    assert completed_count(["a", "b", "c"], {"a": 2, "b": 1, "z": 2}) == 1


def test_last_read_is_the_latest_access():
    entries = {"a": ViewEntry(2, last_access_time=5), "b": ViewEntry(1, last_access_time=9),
               "c": ViewEntry(1, last_access_time=None)}
    assert last_read(entries) == ("b", 1, 9)
    assert last_read({}) == (None, None, None)


def test_list_order_is_last_access_then_enrolment():
    cs = [{"id": 1, "_enrolled": 10, "lastContentAccessTime": None},
          {"id": 2, "_enrolled": 20, "lastContentAccessTime": None},
          {"id": 3, "_enrolled": 5, "lastContentAccessTime": 100},
          {"id": 4, "_enrolled": 1, "lastContentAccessTime": 200}]
    assert [c["id"] for c in list_order(cs)] == [4, 3, 2, 1]

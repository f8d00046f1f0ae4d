"""The view lifecycle rules, without I/O."""

import pytest
from hypothesis import given, strategies as st

from viewer_service.errors import ViewNotStarted
from viewer_service.domain.scope import Scope, resolve_scope
from viewer_service.domain.views import COMPLETED, IN_PROGRESS, End, RowKey, Start, Update, apply

K = RowKey("u", "col", "ctx", "c1")
T0 = 1_700_000_000_000


def test_scope_defaults_follow_seed_scenarios():
    assert resolve_scope("u", "c") == Scope("u", "c", "c")
    assert resolve_scope("u", "c", "col") == Scope("u", "col", "col")
    assert resolve_scope("u", "c", "col", "b1") == Scope("u", "col", "b1")
    assert resolve_scope("u", "c", None, "x") == Scope("u", "c", "x")


def test_start_creates_then_counts_views_without_touching_status():
    row = apply(None, Start(K, T0), T0)
    assert (row.status, row.progress, row.view_count) == (IN_PROGRESS, 0, 1)
    assert row.first_access_time == row.last_access_time == T0
    done = apply(row, End(K, T0 + 10), T0)
    again = apply(done, Start(K, T0 + 20), T0)
    assert (again.status, again.progress, again.view_count) == (COMPLETED, 100, 2)
    assert again.last_access_time == T0 + 20


@pytest.mark.parametrize("op", [Update(K, T0, progress=5), End(K, T0)])
def test_update_and_end_need_a_started_view(op):
    with pytest.raises(ViewNotStarted) as e:
        apply(None, op, T0)
    assert e.value.code == "VIEW_NOT_STARTED"


def test_progress_never_decreases():
    row = apply(None, Start(K, T0), T0)
    row = apply(row, Update(K, T0 + 1, progress=40), T0)
    row = apply(row, Update(K, T0 + 2, progress=20), T0)
    assert row.progress == 40


def test_newest_progress_details_by_client_time_win():
    row = apply(None, Start(K, T0), T0)
    row = apply(row, Update(K, T0 + 200, progress_details={"pos": 2}), T0)
    row = apply(row, Update(K, T0 + 100, progress_details={"pos": 1}), T0)  # synced late
    assert row.progress_details == {"pos": 2}
    row = apply(row, Update(K, T0 + 200, progress_details={"pos": 3}), T0)  # tie: later arrival
    assert row.progress_details == {"pos": 3}
    assert row.last_access_time == T0 + 200


def test_timespent_accumulates_including_revisits():
    row = apply(None, Start(K, T0), T0)
    row = apply(row, Update(K, T0 + 1, timespent=10), T0)
    row = apply(row, End(K, T0 + 2, timespent=5.5), T0)
    row = apply(row, Update(K, T0 + 3, timespent=1), T0)
    assert row.time_spent == 16.5


def test_revisit_changes_neither_status_progress_nor_completion_time():
    row = apply(apply(None, Start(K, T0), T0), End(K, T0 + 50), T0)
    assert (row.status, row.progress, row.last_completed_time) == (COMPLETED, 100, T0 + 50)
    row = apply(row, Start(K, T0 + 60), T0)
    row = apply(row, Update(K, T0 + 70, progress=10, progress_details={"pos": 0}), T0)
    row = apply(row, End(K, T0 + 80), T0)
    assert (row.status, row.progress, row.last_completed_time) == (COMPLETED, 100, T0 + 50)
    assert row.progress_details == {"pos": 0} and row.last_access_time == T0 + 80


def test_an_earlier_completion_synced_late_is_the_first_completion():
    row = apply(apply(None, Start(K, T0), T0), End(K, T0 + 50), T0)
    row = apply(row, End(K, T0 + 20), T0)
    assert row.last_completed_time == T0 + 20


def test_versions_grow_even_when_the_clock_stalls_or_goes_back():
    row = apply(None, Start(K, T0), T0)
    v = row.version
    for now in (T0, T0 - 1000, T0):
        row = apply(row, Update(K, T0, progress=1), now)
        assert row.version > v
        v = row.version


ops = st.lists(
    st.tuples(st.sampled_from(["start", "update", "end"]), st.integers(0, 10_000),
              st.integers(0, 100), st.booleans()),
    min_size=1, max_size=30,
)


@given(ops)
def test_status_and_progress_never_go_down_whatever_the_order(seq):
    row = None
    for kind, dt, progress, details in seq:
        ts = T0 + dt
        op = {"start": Start(K, ts),
              "update": Update(K, ts, progress=progress, progress_details={"p": dt} if details else None),
              "end": End(K, ts)}[kind]
        try:
            new = apply(row, op, T0)
        except ViewNotStarted:
            assert row is None and kind != "start"
            continue
        if row is not None:
            assert new.status >= row.status and new.progress >= row.progress and new.version > row.version
            if row.status == COMPLETED:
                assert new.last_completed_time <= row.last_completed_time
        row = new

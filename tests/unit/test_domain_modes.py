"""Context modes and carry-forward rules (domain/scope.py, domain/carry.py), without I/O."""

from dataclasses import replace

import pytest

from viewer_service.domain.carry import (
    DAY_MS, CarryRule, Target, carried_row, is_earned, is_source, merge_rows, not_before, pick_sources,
    provenance, qualifies, rule_for,
)
from viewer_service.domain.scope import Scope, resolve_scope, storage_scope
from viewer_service.domain.views import COMPLETED, IN_PROGRESS, NOT_STARTED, ContentView, RowKey

T0 = 1_700_000_000_000
NOW = T0 + 50 * DAY_MS
TARGET = Scope("u", "prog", "b2")


def row(col="col", ctx="b1", content="c1", user="u", **kw) -> ContentView:
    kw.setdefault("status", COMPLETED)
    kw.setdefault("last_completed_time", T0 if kw["status"] == COMPLETED else None)
    kw.setdefault("progress", 100 if kw["status"] == COMPLETED else 0)
    return ContentView(RowKey(user, col, ctx, content), **kw)


def target(mode="copy-content", window=None, within=False, start=None, end=None, enrolled=T0) -> Target:
    return Target(TARGET, enrolled, start, end, CarryRule(mode, window, within))


# --- scope -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, args, expected", [
    ("strict", ("c", None, None), ("c", "c")),
    ("strict", ("c", "col", None), ("col", "col")),
    ("strict", ("c", "col", "b1"), ("col", "b1")),
    ("strict", ("c", None, "b1"), ("c", "b1")),
    ("strict", (None, "col", None), ("col", "col")),
    ("collection", ("c", None, None), ("c", "c")),
    ("collection", ("c", "col", None), ("col", "col")),
    ("collection", ("c", "col", "b1"), ("col", "col")),
    ("collection", (None, "col", "b1"), ("col", "col")),
    ("content", ("c", "col", "b1"), ("c", "c")),
    ("content", ("c", None, None), ("c", "c")),
    ("content", (None, "col", "b1"), ("col", "col")),  # no content: falls back like collection mode
])
def test_resolve_scope(mode, args, expected):
    assert resolve_scope("u", *args, mode=mode) == Scope("u", *expected)


def test_resolve_scope_default_mode_is_strict():
    assert resolve_scope("u", "c", "col", "b1") == Scope("u", "col", "b1")


@pytest.mark.parametrize("mode", ["strict", "collection", "content"])
def test_resolve_scope_needs_content_or_collection(mode):
    with pytest.raises(ValueError):
        resolve_scope("u", None, None, "b1", mode=mode)


@pytest.mark.parametrize("mode", ["", "STRICT", "batch", None])
def test_resolve_scope_rejects_unknown_mode(mode):
    with pytest.raises(ValueError):
        resolve_scope("u", "c", "col", "b1", mode=mode)


@pytest.mark.parametrize("mode, expected", [
    ("strict", Scope("u", "col", "b1")),
    ("collection", Scope("u", "col", "col")),
    ("content", Scope("u", "c9", "c9")),
])
def test_storage_scope(mode, expected):
    assert storage_scope(Scope("u", "col", "b1"), "c9", mode) == expected


# --- rule_for ----------------------------------------------------------------------------------

DEFAULT = CarryRule("copy-content", 30, True)


@pytest.mark.parametrize("doc", [None, {}, {"carryForward": None}, {"carryForward": "move"}, {"x": 1}])
def test_rule_for_keeps_the_default_without_a_context_rule(doc):
    assert rule_for(DEFAULT, doc) is DEFAULT


@pytest.mark.parametrize("cf, expected", [
    ({}, CarryRule("none", None, False)),  # replaces the default whole: nothing inherited
    ({"mode": "move"}, CarryRule("move", None, False)),
    ({"mode": "copy-collection", "windowDays": 90, "withinContextDates": True},
     CarryRule("copy-collection", 90, True)),
    ({"withinContextDates": 1}, CarryRule("none", None, True)),
])
def test_rule_for_context_rule_replaces_default(cf, expected):
    assert rule_for(DEFAULT, {"carryForward": cf}) == expected


def test_rule_as_json():
    assert CarryRule("move", 7, True).as_json() == {"mode": "move", "windowDays": 7, "withinContextDates": True}


# --- qualifies ---------------------------------------------------------------------------------

@pytest.mark.parametrize("completed_at, ok", [
    (T0 - 10 * DAY_MS, True),  # exactly windowDays before the enrolment: inclusive
    (T0 - 10 * DAY_MS - 1, False),
    (T0 - DAY_MS, True),
    (T0 + DAY_MS, True),  # after the enrolment (no end date)
])
def test_qualifies_window_boundary(completed_at, ok):
    assert qualifies(target(window=10), completed_at) is ok


def test_qualifies_window_zero_days():
    assert qualifies(target(window=0), T0)
    assert not qualifies(target(window=0), T0 - 1)


@pytest.mark.parametrize("start, end, completed_at, ok", [
    (T0, T0 + 10, T0, True),
    (T0, T0 + 10, T0 + 10, True),
    (T0, T0 + 10, T0 - 1, False),
    (T0, T0 + 10, T0 + 11, False),
    (None, T0 + 10, 0, True),  # open start
    (T0, None, T0 + 10 ** 9, True),  # open end
    (T0, None, T0 - 1, False),
    (None, None, 0, True),
])
def test_qualifies_within_context_dates(start, end, completed_at, ok):
    assert qualifies(target(within=True, start=start, end=end), completed_at) is ok


@pytest.mark.parametrize("enrolled, completed_at, ok", [
    # context dates [T0, T0+100d], window 10 days before the enrolment
    (T0 + 50 * DAY_MS, T0 + 5 * DAY_MS, True),  # in the dates, outside the window
    (T0 + 5 * DAY_MS, T0 - 2 * DAY_MS, True),  # in the window, before the context start
    (T0 + 5 * DAY_MS, T0 + DAY_MS, True),  # both
    (T0 + 5 * DAY_MS, T0 - 6 * DAY_MS, False),  # neither
    (T0 + 50 * DAY_MS, T0 - 1, False),  # neither
])
def test_qualifies_rules_are_alternatives(enrolled, completed_at, ok):
    t = Target(TARGET, enrolled, T0, T0 + 100 * DAY_MS, CarryRule("copy-content", 10, True))
    assert qualifies(t, completed_at) is ok


@pytest.mark.parametrize("completed_at", [0, T0 - 10 ** 6 * DAY_MS, T0, T0 + 10 * DAY_MS])
def test_qualifies_everything_without_rules(completed_at):
    assert qualifies(target(), completed_at)
    assert qualifies(target(start=T0, end=T0 + 10 * DAY_MS), completed_at)  # dates alone are no rule


@pytest.mark.parametrize("t", [
    target(), target(window=10 ** 6), target(within=True), target(window=10 ** 6, within=True),
])
def test_qualifies_never_after_the_context_end(t):
    t = replace(t, end=T0)
    assert qualifies(t, T0)
    assert not qualifies(t, T0 + 1)


@pytest.mark.parametrize("t", [target(), target(window=10), target(within=True), target(end=T0)])
def test_qualifies_never_without_a_completion(t):
    assert not qualifies(t, None)


# --- sources -----------------------------------------------------------------------------------

@pytest.mark.parametrize("carried_from, earned", [
    (None, True),
    ({"mode": "move"}, True),
    ({"mode": "copy-content"}, False),
    ({"mode": "copy-collection"}, False),
    ({}, False),
])
def test_is_earned(carried_from, earned):
    assert is_earned(row(carried_from=carried_from)) is earned


@pytest.mark.parametrize("mode, v, ok", [
    ("copy-content", row(), True),
    ("copy-collection", row(), True),
    ("copy-content", row(col="c1", ctx="c1", last_completed_time=T0 - 1), True),  # standalone counts
    # copy-collection: standalone consumption only counts once enrolled (completed >= enrolled_date)
    ("copy-collection", row(col="c1", ctx="c1", last_completed_time=T0 - 1), False),
    ("copy-collection", row(col="c1", ctx="b9", last_completed_time=T0 - 1), False),
    ("copy-collection", row(col="c1", ctx="c1", last_completed_time=T0), True),
    ("copy-collection", row(col="c1", ctx="c1", last_completed_time=T0 + 1), True),
    ("copy-collection", row(col="A", last_completed_time=T0 - 1), True),  # inside a collection: any time
    ("copy-content", row(status=IN_PROGRESS), False),
    ("copy-content", row(status=NOT_STARTED), False),
    ("copy-content", row(carried_from={"mode": "copy-content"}), False),  # copies are never sources
    ("copy-collection", row(carried_from={"mode": "copy-collection"}), False),
    ("copy-content", row(carried_from={"mode": "move"}), True),  # a moved row is
    ("copy-collection", row(carried_from={"mode": "move"}), True),
    ("copy-content", row(col="prog", ctx="b2"), False),  # the target's own row
    ("copy-collection", row(col="prog", ctx="b2"), False),
    ("copy-content", row(col="prog", ctx="b1"), True),  # same collection, another context
    ("copy-content", row(user="other", col="prog", ctx="b2"), True),  # scope includes the user
    ("none", row(), False),
    ("move", row(), False),
])
def test_is_source(mode, v, ok):
    assert is_source(target(mode), v) is ok


def _scored(col, score, max_score=10, done=T0, content="c1", ctx="b1", **kw):
    return row(col=col, ctx=ctx, content=content, best_score=score, best_max_score=max_score,
               best_attempt_id=f"a-{col}-{ctx}", last_completed_time=done, **kw)


def test_pick_sources_best_score_then_earliest_completion():
    a = _scored("A", 5, done=T0 - 5)
    b = _scored("B", 8, done=T0)  # best fraction wins even though later
    c = _scored("C", 4, 5, done=T0 - 9)  # 0.8 as well, completed earlier: wins the tie
    d = _scored("D", None, None, done=T0 - 100)  # unscored ranks below any score
    for cands in ([a, b, c, d], [d, c, b, a]):
        assert pick_sources(target(), cands) == {"c1": c}
    assert pick_sources(target(), [a, b]) == {"c1": b}
    assert pick_sources(target(), [d, _scored("E", 0)])["c1"].key.collection_id == "E"  # 0/10 > no score


def test_pick_sources_unscored_earliest_completion():
    a, b = _scored("A", None, None, done=T0), _scored("B", None, None, done=T0 - 1)
    zero_max = _scored("Z", 3, 0, done=T0 - 2)  # a zero max score counts as no score
    assert pick_sources(target(), [a, b, zero_max]) == {"c1": zero_max}
    assert pick_sources(target(), [a, b]) == {"c1": b}


def test_pick_sources_tie_break_is_deterministic():
    rows = [_scored(col, 5, ctx=ctx) for col in ("A", "B") for ctx in ("x", "y")]
    picks = {pick_sources(target(), order)["c1"].key for order in (rows, rows[::-1], rows[1:] + rows[:1])}
    assert len(picks) == 1


def test_pick_sources_per_content_and_filters():
    t = target(window=10, end=T0 + DAY_MS)
    good1, good2 = _scored("A", 5, content="c1"), _scored("A", 5, content="c2")
    rejected = [
        _scored("B", 10, content="c1", done=T0 - 11 * DAY_MS),  # outside the window
        _scored("B", 10, content="c2", done=T0 + 2 * DAY_MS),  # after the context end
        _scored("prog", 10, content="c1", ctx="b2"),  # the target's own row
        _scored("C", 10, content="c1", carried_from={"mode": "copy-content"}),  # a copy
        _scored("D", 10, content="c2", status=IN_PROGRESS),
    ]
    assert pick_sources(t, rejected + [good1, good2]) == {"c1": good1, "c2": good2}
    assert pick_sources(t, rejected) == {}
    assert pick_sources(target(mode="none"), [good1, good2]) == {}
    moved = _scored("M", 10, content="c3", carried_from={"mode": "move"})
    assert pick_sources(t, [moved]) == {"c3": moved}


def test_pick_sources_copy_collection_skips_standalone_consumption_before_enrolment():
    standalone = _scored("c1", 10, ctx="c1", done=T0 - 1)
    in_collection = _scored("A", 1, done=T0 - 5)
    assert pick_sources(target("copy-collection"), [standalone, in_collection]) == {"c1": in_collection}
    assert pick_sources(target("copy-content"), [standalone, in_collection]) == {"c1": standalone}
    enrolled = _scored("c1", 10, ctx="c1", done=T0)
    assert pick_sources(target("copy-collection"), [enrolled, in_collection]) == {"c1": enrolled}


# --- building rows -----------------------------------------------------------------------------

RULE = CarryRule("copy-content", 30, False)
SRC = row(col="A", ctx="a1", best_score=6, best_max_score=10, best_attempt_id="att-src", attempts=3,
          progress=100, progress_details={"page": 9}, progress_details_ts=T0 - 1, first_access_time=T0 - 10,
          last_access_time=T0 + 5, time_spent=120.0, view_count=4, version=77)
KEY = RowKey("u", "prog", "b2", "c1")


def test_provenance():
    assert provenance("copy-content", "enrol", SRC, RULE, NOW) == {
        "mode": "copy-content", "trigger": "enrol", "from": {"collectionId": "A", "contextId": "a1"},
        "at": NOW, "completedOn": T0, "attemptId": "att-src",
        "rule": {"mode": "copy-content", "windowDays": 30, "withinContextDates": False},
    }


PROV = provenance("copy-content", "enrol", SRC, RULE, NOW)


@pytest.mark.parametrize("carried_from", [None, {"mode": "copy-content"}])
def test_carried_row_none_when_target_already_completed(carried_from):
    existing = row(col="prog", ctx="b2", last_completed_time=T0 + 9, carried_from=carried_from)
    assert carried_row(KEY, existing, SRC, PROV, NOW) is None


def test_carried_row_creates_a_completed_row():
    new = carried_row(KEY, None, SRC, PROV, NOW)
    assert new.key == KEY
    assert (new.status, new.progress, new.last_completed_time) == (COMPLETED, 100, T0)
    assert (new.best_score, new.best_max_score, new.best_attempt_id, new.attempts) == (6, 10, "att-src", 1)
    assert new.carried_from == PROV
    assert (new.progress_details, new.progress_details_ts) == ({"page": 9}, T0 - 1)
    assert (new.first_access_time, new.last_access_time, new.last_updated_time) == (T0 - 10, T0 + 5, NOW)
    assert new.version >= NOW * 1000
    unscored = carried_row(KEY, None, row(col="A"), PROV, NOW)
    assert (unscored.attempts, unscored.best_score) == (0, None)


def test_carried_row_over_an_unfinished_row():
    existing = row(col="prog", ctx="b2", status=IN_PROGRESS, progress=40, time_spent=30.0, view_count=2,
                   best_score=2, best_max_score=10, best_attempt_id="att-own", attempts=1, version=5)
    new = carried_row(KEY, existing, SRC, PROV, NOW)
    assert (new.status, new.progress, new.last_completed_time, new.carried_from) == (COMPLETED, 100, T0, PROV)
    assert (new.best_score, new.best_max_score, new.best_attempt_id, new.attempts) == (6, 10, "att-src", 2)
    assert (new.time_spent, new.view_count) == (30.0, 2)  # its own consumption stays
    assert new.version > existing.version and new.last_updated_time == NOW


def test_carried_row_keeps_a_better_attempt_made_here():
    existing = row(col="prog", ctx="b2", status=IN_PROGRESS, best_score=9, best_max_score=10,
                   best_attempt_id="att-own", attempts=2, version=5)
    new = carried_row(KEY, existing, SRC, PROV, NOW)
    assert (new.status, new.progress, new.last_completed_time, new.carried_from) == (COMPLETED, 100, T0, PROV)
    assert (new.best_score, new.best_max_score, new.best_attempt_id, new.attempts) == (9, 10, "att-own", 2)


# --- merge_rows --------------------------------------------------------------------------------

def test_merge_rows_into_nothing():
    merged = merge_rows(None, SRC, NOW, carried_from={"mode": "move"})
    assert merged.carried_from == {"mode": "move"}
    assert merged.version > SRC.version and merged.version >= NOW * 1000
    assert (merged.status, merged.best_score, merged.time_spent) == (COMPLETED, 6, 120.0)
    kept = merge_rows(None, row(carried_from={"mode": "copy-content"}), NOW)
    assert kept.carried_from == {"mode": "copy-content"}


def test_merge_rows_combines_two_records():
    a = row(col="prog", ctx="b2", status=IN_PROGRESS, progress=60, last_completed_time=None,
            progress_details={"page": 3}, progress_details_ts=T0 + 100, time_spent=30.0, view_count=2,
            first_access_time=T0 - 5, last_access_time=T0 + 200, best_score=9, best_max_score=10,
            best_attempt_id="att-own", attempts=2, version=10 ** 18)
    merged = merge_rows(a, SRC, NOW, carried_from={"mode": "move"})
    assert merged.key == a.key
    assert (merged.status, merged.progress, merged.last_completed_time) == (COMPLETED, 100, T0)
    assert (merged.time_spent, merged.view_count, merged.attempts) == (150.0, 6, 5)
    assert (merged.first_access_time, merged.last_access_time) == (T0 - 10, T0 + 200)
    assert (merged.best_score, merged.best_max_score, merged.best_attempt_id) == (9, 10, "att-own")
    assert (merged.progress_details, merged.progress_details_ts) == ({"page": 3}, T0 + 100)  # newer
    assert merged.last_updated_time == NOW and merged.version > a.version
    assert merged.carried_from == {"mode": "move"}  # other's status counts


def test_merge_rows_score_and_details_from_other_when_better_or_newer():
    a = row(col="prog", ctx="b2", best_score=1, best_max_score=10, best_attempt_id="att-own",
            progress_details={"page": 1}, progress_details_ts=T0 - 100)
    merged = merge_rows(a, SRC, NOW)
    assert (merged.best_score, merged.best_attempt_id) == (6, "att-src")
    assert (merged.progress_details, merged.progress_details_ts) == ({"page": 9}, T0 - 1)
    assert merged.version > SRC.version


@pytest.mark.parametrize("a_done, b_done, first, origin", [
    (T0, T0 + 10, T0, "own"),  # into's completion is first: its origin stays
    (T0 + 10, T0, T0, "given"),  # other's completion is first: it counts
])
def test_merge_rows_first_completion_decides_origin(a_done, b_done, first, origin):
    a = row(col="prog", ctx="b2", last_completed_time=a_done, carried_from={"mode": "own"})
    b = row(col="A", last_completed_time=b_done)
    merged = merge_rows(a, b, NOW, carried_from={"mode": "given"})
    assert merged.last_completed_time == first
    assert merged.carried_from == {"mode": origin}


def test_merge_rows_completion_only_from_completed_rows():
    a = row(col="prog", ctx="b2", last_completed_time=T0 + 10)
    b = row(col="A", status=IN_PROGRESS, progress=30, last_completed_time=T0)
    merged = merge_rows(a, b, NOW, carried_from={"mode": "move"})
    assert (merged.status, merged.progress, merged.last_completed_time) == (COMPLETED, 100, T0 + 10)
    assert merged.carried_from is None  # into's status counts
    both_open = merge_rows(row(status=IN_PROGRESS, progress=10), row(status=NOT_STARTED), NOW)
    assert (both_open.status, both_open.progress, both_open.last_completed_time) == (IN_PROGRESS, 10, None)


# --- not_before --------------------------------------------------------------------------------

@pytest.mark.parametrize("completed_on, enrolled, carried, expected", [
    (T0 - 5, T0, True, T0),
    (T0 + 5, T0, True, T0 + 5),
    (T0 - 5, T0, False, T0 - 5),
    (None, T0, True, None),
    (T0 - 5, None, True, T0 - 5),
    (None, None, False, None),
])
def test_not_before(completed_on, enrolled, carried, expected):
    assert not_before(completed_on, enrolled, carried) == expected

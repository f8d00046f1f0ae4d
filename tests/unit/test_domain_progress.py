"""Collection progress rules, without I/O."""

from hypothesis import given, strategies as st

from viewer_service.domain.collections import from_hierarchy
from viewer_service.domain.progress import compute, merge_stored
from viewer_service.domain.views import ContentView, RowKey

UNIT = "application/vnd.ekstep.content-collection"


def rows(**statuses):
    """content id -> (status, completion time)"""
    return {cid: ContentView(RowKey("u", "col", "col", cid), status=st_, last_completed_time=t if st_ == 2 else None)
            for cid, (st_, t) in statuses.items()}


COURSE = from_hierarchy({"identifier": "col", "children": [
    {"identifier": "unit1", "mimeType": UNIT, "children": [{"identifier": "a"}, {"identifier": "b"}]},
    {"identifier": "unit2", "mimeType": UNIT, "children": [
        {"identifier": "c"}, {"identifier": "opt", "relationalMetadata": {"optional": True}}]},
]})


def test_not_started_in_progress_completed():
    assert compute(COURSE, {}).collection.status == 0
    p = compute(COURSE, rows(a=(1, None)))
    assert (p.collection.status, p.collection.progress, p.collection.completed_count) == (1, 0, 0)
    p = compute(COURSE, rows(a=(2, 10), b=(2, 30)))
    assert (p.collection.status, p.collection.progress) == (1, 66)  # floor(100 * 2 / 3)
    assert p.units["unit1"].status == 2 and p.units["unit1"].completed_on == 30
    assert p.units["unit2"].status == 0
    p = compute(COURSE, rows(a=(2, 10), b=(2, 30), c=(2, 20)))
    assert (p.collection.status, p.collection.progress, p.collection.completed_on) == (2, 100, 30)


def test_optional_leaves_do_not_count():
    p = compute(COURSE, rows(a=(2, 1), b=(2, 2), opt=(2, 9)))
    assert (p.collection.completed_count, p.collection.required_count, p.collection.status) == (2, 3, 1)
    p = compute(COURSE, rows(a=(2, 1), b=(2, 2), c=(2, 3)))
    assert p.collection.status == 2 and p.collection.completed_on == 3  # the optional one is not needed


def test_content_status_keeps_every_content_of_the_scope():
    p = compute(COURSE, rows(a=(2, 1), stray=(1, None)))
    assert p.content_status == {"a": 2, "stray": 1}
    assert p.collection.completed_count == 1


def test_unknown_collection_has_statuses_but_no_progress():
    p = compute(None, rows(a=(2, 1)))
    assert p.content_status == {"a": 2} and p.collection is None


def test_nothing_required_completes_on_any_leaf():
    c = from_hierarchy({"identifier": "col", "children": [{"identifier": "x", "relationalMetadata": {"optional": "true"}}]})
    assert compute(c, rows(x=(1, None))).collection.status == 1
    p = compute(c, rows(x=(2, 5))).collection
    assert (p.status, p.progress, p.completed_on) == (2, 100, 5)


def test_completion_is_sticky_and_its_date_never_moves():
    grown = from_hierarchy({"identifier": "col", "leafNodes": ["a", "b", "c", "new"]})
    new = compute(grown, rows(a=(2, 1), b=(2, 2), c=(2, 3))).collection
    assert new.status == 1 and new.progress == 75
    kept = merge_stored(new, 2, 3)
    assert (kept.status, kept.completed_on, kept.progress) == (2, 3, 75)
    again = merge_stored(compute(grown, rows(a=(2, 1), b=(2, 2), c=(2, 3), new=(2, 99))).collection, 2, 3)
    assert again.completed_on == 3


statuses = st.dictionaries(st.sampled_from(["a", "b", "c", "opt", "z"]),
                           st.tuples(st.sampled_from([1, 2]), st.integers(1, 10**6)), max_size=5)


@given(statuses, statuses)
def test_progress_never_drops_when_statuses_only_grow(before, extra):
    after = dict(before)
    for cid, (s, t) in extra.items():
        if cid not in after or after[cid][0] < s:
            after[cid] = (s, t if after.get(cid, (0, None))[0] < 2 else after[cid][1])
    p0, p1 = compute(COURSE, rows(**before)).collection, compute(COURSE, rows(**after)).collection
    assert p1.progress >= p0.progress and p1.status >= p0.status
    assert 0 <= p1.progress <= 100
    if p1.status == 2:
        assert p1.progress == 100 and p1.completed_on is not None

"""The read entry (domain/views.py ViewEntry) and its stored form in Redis (adapters/cache/codec.py)."""

import orjson

from viewer_service.adapters.cache.codec import decode, encode
from viewer_service.domain.views import ArchivedView, ContentView, RowKey, ViewEntry

K = RowKey("u", "col", "ctx", "c")


def test_an_entry_is_built_from_its_row():
    v = ContentView(K, status=2, progress=100, progress_details={"p": 1}, last_access_time=5,
                    last_completed_time=6, best_score=8.0, best_max_score=10.0, best_attempt_id="a1", attempts=2)
    assert ViewEntry.of(v) == ViewEntry(2, 100, {"p": 1}, 5, 6, 8.0, 10.0, 2)  # the attempt id only when carried
    carried = ContentView(K, status=2, best_attempt_id="a1", carried_from={"scope": "x", "attemptId": "a1"})
    assert ViewEntry.of(carried).attempt_id == "a1" and ViewEntry.of(carried).carried_from["scope"] == "x"
    assert ViewEntry.of(ArchivedView(K, status=2)).archived and not ViewEntry.of(v).archived


def test_the_stored_form_is_the_camel_case_json_of_earlier_releases():
    plain = ViewEntry(1, 40, {"p": 1}, 5, None)
    assert orjson.loads(encode(plain)) == {"status": 1, "progress": 40, "progressDetails": {"p": 1},
                                           "lastAccessTime": 5, "lastCompletedTime": None, "score": None,
                                           "max_score": None, "attempts": 0}
    full = ViewEntry(2, 100, None, 5, 6, 8.0, 10.0, 3, {"scope": "x"}, "a1", True)
    assert orjson.loads(encode(full))["carriedFrom"] == {"scope": "x"} and orjson.loads(encode(full))["archived"]
    for e in (plain, full):
        assert decode(encode(e)) == e


def test_entries_written_before_scores_existed_decode_with_no_score():
    old = b'{"status":2,"progress":100,"progressDetails":null,"lastAccessTime":5,"lastCompletedTime":6}'
    assert decode(old) == ViewEntry(2, 100, None, 5, 6, None, None, 0, None, None, False)


def test_an_old_entry_with_every_optional_key_keeps_them():
    """Eight keys, but not the eight of a plain entry: no score fields, a carried, archived status."""
    old = {"status": 2, "progress": 100, "progressDetails": None, "lastAccessTime": 5, "lastCompletedTime": 6,
           "carriedFrom": {"scope": "x"}, "attemptId": "a1", "archived": True}
    assert decode(orjson.dumps(old)) == ViewEntry(2, 100, None, 5, 6, None, None, 0, {"scope": "x"}, "a1", True)

"""cqlsh's export format: the CSV dialect and every value literal the import reads."""

import csv
import io

import pytest

from viewer_service.domain import cqlsh

T = 1624426660575  # 2021-06-23 05:37:40.575 UTC


@pytest.mark.parametrize("text, ms", [
    ("2021-06-23 05:37:40.575000+0000", T),  # cqlsh's own format
    ("2021-06-23 05:37:40:575+0000", T),  # Sunbird's text columns (lastaccesstime ...)
    ("2021-06-23 11:07:40.575000+0530", T),  # another zone
    ("2021-06-23 01:37:40.575-0400", T),
    ("2021-06-23T05:37:40.575Z", T),
    ("2021-06-23 05:37:40.575+05:30", T - 19_800_000),
    ("2021-06-23 05:37:40+0000", T - 575),  # cqlsh without fractions
    ("2021-06-23 05:37:40", T - 575),  # no zone: UTC
    ("2021-06-23", T - (5 * 3600 + 37 * 60 + 40) * 1000 - 575),
    ("1624426660575", T),  # epoch milliseconds
    ("2021-06-23 05:37:40.575999+0000", T),  # microseconds: truncated to the millisecond
    ("1969-12-31 23:59:59.999000+0000", -1),
    ("2016-12-31 23:59:60.000000+0000", 1483228800000),  # a leap second (the slow path)
    ("", None),
])
def test_timestamps(text, ms):
    assert cqlsh.timestamp(text) == ms


@pytest.mark.parametrize("bad", ["yesterday", "2021-13-01 00:00:00", "2021-02-30", "2021-06-23 25:00:00",
                                 "2021-06-23 05:37:40.575000+0000x",
                                 "2021-06-23 05:37:40.57500000000"])  # cqlsh's length, no zone: 11 fraction digits
def test_bad_timestamps(bad):
    with pytest.raises(cqlsh.BadValue):
        cqlsh.timestamp(bad)


def test_scalars():
    assert cqlsh.integer("42") == 42 and cqlsh.integer("-3") == -3 and cqlsh.integer("2.0") == 2
    assert cqlsh.integer("") is None and cqlsh.number("") is None and cqlsh.boolean("") is None
    assert cqlsh.number("1.5") == 1.5 and cqlsh.number("1e3") == 1000.0
    assert cqlsh.boolean("True") is True and cqlsh.boolean("False") is False and cqlsh.boolean("true") is True
    for fn, bad in ((cqlsh.integer, "2.5"), (cqlsh.integer, "x"), (cqlsh.number, "NaN"), (cqlsh.number, "inf"),
                    (cqlsh.boolean, "maybe")):
        with pytest.raises(cqlsh.BadValue):
            fn(bad)


@pytest.mark.parametrize("text, value", [
    ("{'do_1': 2, 'do_2': 1}", {"do_1": 2, "do_2": 1}),  # map<text, int>
    ("{}", {}),
    ("[]", []),
    ("{'completedCount': '2021-06-23 05:37:40.575000+0000'}", {"completedCount": "2021-06-23 05:37:40.575000+0000"}),
    ("{'score:do_1': 1.5, 'max_score:do_1': 2.0}", {"score:do_1": 1.5, "max_score:do_1": 2.0}),
    ("['a', 'it''s', 'x, y']", ["a", "it's", "x, y"]),  # '' is a quote inside a string
    ("{1, 2, 3}", [1, 2, 3]),  # a set
    ("(1, 'a')", [1, "a"]),  # a tuple
    ("[{'identifier': 'c1', 'name': 'Completion', 'lastIssuedOn': '2021-07-01'}]",  # list<frozen<map>>
     [{"identifier": "c1", "name": "Completion", "lastIssuedOn": "2021-07-01"}]),
    # A list of the question UDT: bare field names, null, nested lists of maps holding JSON text.
    ("[{id: 'q1', assess_ts: '2021-06-23 05:37:40.575000+0000', max_score: 1.0, score: 0.5, type: 'mcq', "
     "title: 'Pick \"one\", or two', resvalues: [{'1': '{\"text\":\"A\"}'}], params: [], description: null, "
     "duration: 3}]",
     [{"id": "q1", "assess_ts": "2021-06-23 05:37:40.575000+0000", "max_score": 1.0, "score": 0.5, "type": "mcq",
       "title": 'Pick "one", or two', "resvalues": [{"1": '{"text":"A"}'}], "params": [], "description": None,
       "duration": 3}]),
    ("{'k': True, 'n': -1.5e2, 'u': 123e4567-e89b-12d3-a456-426614174000}",
     {"k": True, "n": -150.0, "u": "123e4567-e89b-12d3-a456-426614174000"}),
    ("", None),
])
def test_literals(text, value):
    assert cqlsh.literal(text) == value


@pytest.mark.parametrize("bad", ["{'a': 1", "['a',", "{'a' 1}", "{'a': 1, 2}", "'open", "[1] x", "{[1]: 2}",
                                 "[NaN]"])
def test_bad_literals(bad):
    with pytest.raises(cqlsh.BadValue):
        cqlsh.literal(bad)


def _file(rows: list[list[str]], tail: bytes = b"") -> io.BytesIO:
    buf = io.StringIO()
    w = csv.writer(buf, cqlsh.Dialect)
    for r in rows:
        w.writerow(r)
    return io.BytesIO(buf.getvalue().encode() + tail)


def test_the_dialect_escapes_quotes_with_a_backslash():
    """A quote inside a field is \\" (not doubled); commas, newlines and non-ASCII survive."""
    fields = ["a", 'say "hi", then go', "two\nlines", "back\\slash", "", "ünï"]
    f = _file([fields])
    assert b'\\"hi\\"' in f.getvalue() and b'""' not in f.getvalue()
    [(row, end, error)] = list(cqlsh.records(f))
    assert row == fields and error is None and end == len(f.getvalue())


def test_records_resume_at_an_offset():
    f = _file([["h1", "h2"], ["1", "multi\nline"], ["2", "x"], ["3", "y"]])
    got = list(cqlsh.records(f))
    assert [r for r, _, _ in got] == [["h1", "h2"], ["1", "multi\nline"], ["2", "x"], ["3", "y"]]
    after_second = got[1][1]
    assert [r for r, _, _ in cqlsh.records(f, after_second)] == [["2", "x"], ["3", "y"]]


def test_a_file_cut_inside_a_quoted_field_is_reported_not_fatal():
    f = _file([["1", "ok"]], tail=b'2,"cut in the mid')
    got = list(cqlsh.records(f))
    assert got[0][0] == ["1", "ok"]
    assert got[1][0] is None and "malformed CSV" in got[1][2]


def test_a_file_cut_mid_row_gives_a_short_row():
    f = _file([["1", "ok"]], tail=b"2")
    assert [r for r, _, _ in cqlsh.records(f)] == [["1", "ok"], ["2"]]

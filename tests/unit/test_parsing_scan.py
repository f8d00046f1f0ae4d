"""The byte scan in front of the unstorable-value walk (api/parsing.py) only skips bodies the walk
would pass: it may flag more than it must, never less."""

import json
import re

from hypothesis import given, settings, strategies as st
from pydantic_core import from_json

from viewer_service.api.parsing import _suspect, _unstorable, unstorable

# The regular expression the scan replaced: every body it flagged is still flagged.
OLD = re.compile(rb"\\u0000|(?:^|[\[:,])\s*-?(?:\d{19}|NaN|Infinity)|\d[eE]\+?\d{3}")

values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=300)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=400)
@given(values)
def test_the_scan_never_hides_what_the_walk_refuses(value):
    body = json.dumps({"request": value}).encode()  # NaN and Infinity as Python writes them
    try:
        doc = from_json(body, allow_inf_nan=True)
    except ValueError:
        return
    refused = _unstorable(doc, ())
    if refused is not None:
        assert unstorable(body) == refused


@settings(max_examples=400)
@given(st.binary(max_size=200) | st.text(alphabet="0123456789eE+-.:,[ NaInfity\\u").map(str.encode))
def test_the_scan_flags_every_body_the_old_expression_flagged(body):
    if OLD.search(body):
        assert _suspect(body)


def test_examples():
    assert not _suspect(b'{"request":{"ets":1700000000001,"score":1.5e10,"title":"Question 1"}}')
    for bad in (b'{"a":12345678901234567890}', b'{"a":-12345678901234567890}', b'{"a":NaN}', b'{"a":-Infinity}',
                b'{"a":1e400}', b'{"a":1E+309}', b'{"a":"x\\u0000"}'):
        assert _suspect(bad), bad
        assert unstorable(bad) is not None, bad

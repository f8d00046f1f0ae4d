"""What `cqlsh COPY ... TO` writes: its CSV dialect and its value literals (pure, no I/O of its own).

cqlsh's copyutil writes with Python's csv module, quote `"`, escape `\\`, doublequote off (a quote
inside a field is `\\"`), the empty string for null, `True`/`False` for booleans, timestamps as
`2021-06-23 05:37:40.575000+0000`, and collections / user-defined types as CQL literals:
`{'do_1': 2}`, `['a', 'b']`, `[{id: 'q1', score: 1.0, resvalues: [{'1': 'x'}]}]`."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any, BinaryIO

csv.field_size_limit(64 * 1024 * 1024)  # a question list can be long; a broken quote is caught by the row check


class Dialect(csv.Dialect):
    delimiter = ","
    quotechar = '"'
    escapechar = "\\"
    doublequote = False
    skipinitialspace = False
    lineterminator = "\n"
    quoting = csv.QUOTE_MINIMAL
    strict = True


class BadValue(ValueError):
    """A literal that does not parse; the message names what was expected."""


def records(f: BinaryIO, start: int = 0) -> Iterator[tuple[list[str] | None, int, str | None]]:
    """The CSV records of `f` from byte `start`: (fields, the byte offset just after the record,
    None), or (None, offset, why) for text that is not CSV (the read goes on after it).
    csv.reader pulls exactly the lines of one record before yielding it, so the offset after the
    last line it took is the record's end, where a resumed read starts."""
    f.seek(start)
    pos = [start]

    def lines():
        for raw in f:
            pos[0] += len(raw)
            yield raw.decode("utf-8", errors="replace")

    source = lines()
    while True:
        reader = csv.reader(source, Dialect)
        try:
            for row in reader:
                yield row, pos[0], None
            return
        except csv.Error as e:  # e.g. a quote left open at the end of a cut file
            yield None, pos[0], f"malformed CSV: {e}"


# -- scalars ----------------------------------------------------------------------

_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d)(?::(\d\d)(?:[.:](\d{1,9}))?)?)?\s*(Z|[+-]\d\d:?\d\d)?$")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_fromiso = datetime.fromisoformat
_days: dict[str, int] = {}  # "YYYY-MM-DD" -> days since the epoch; a file holds few distinct dates


def timestamp(s: str) -> int | None:
    """Epoch milliseconds of a cqlsh timestamp, or of Sunbird's text times
    (`2021-06-23 05:37:40:575+0000`), or of plain epoch milliseconds. Empty: None."""
    if not s:
        return None
    n = len(s)
    # Fast path, nearly every value: cqlsh's "2021-06-23 05:37:40.575000+0000" or Sunbird's
    # "2021-06-23 05:37:40:575+0000", parsed in C; anything odd (a leap second ...) falls through.
    if n == 31 and s[19] == "." and s[10] == " ":
        try:
            return (_fromiso(s) - _EPOCH) // _MS
        except (ValueError, TypeError):  # TypeError: no zone after all
            pass
    elif n == 28 and s[19] == ":" and s[10] == " ":
        try:
            return (_fromiso(f"{s[:19]}.{s[20:]}") - _EPOCH) // _MS
        except (ValueError, TypeError):  # TypeError: no zone after all
            pass
    if s.isdigit() or (s[0] == "-" and s[1:].isdigit()):
        return int(s)
    m = _TS.match(s.strip())
    if m is None:
        raise BadValue(f"not a timestamp: {s[:40]!r}")
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    key = s[:10]
    days = _days.get(key)
    if days is None:
        try:
            days = date(int(y), int(mo), int(d)).toordinal() - _EPOCH_DAY
        except ValueError:
            raise BadValue(f"not a date: {s[:40]!r}") from None
        if len(_days) < 100_000:
            _days[key] = days
    h, mn, sc = int(hh or 0), int(mi or 0), int(ss or 0)
    if h > 23 or mn > 59 or sc > 60:
        raise BadValue(f"not a time of day: {s[:40]!r}")
    ms = (((days * 24 + h) * 60 + mn) * 60 + sc) * 1000
    if frac:
        ms += int((frac + "00")[:3])
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        ms -= sign * (int(digits[:2]) * 60 + int(digits[2:])) * 60_000
    return ms


def integer(s: str) -> int | None:
    if not s:
        return None
    try:
        return int(s)
    except ValueError:
        try:
            f = float(s)
        except ValueError:
            raise BadValue(f"not an integer: {s[:40]!r}") from None
        if f != f or f in (float("inf"), float("-inf")) or f != int(f):
            raise BadValue(f"not an integer: {s[:40]!r}") from None
        return int(f)


def number(s: str) -> float | None:
    if not s:
        return None
    try:
        f = float(s)
    except ValueError:
        raise BadValue(f"not a number: {s[:40]!r}") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise BadValue(f"not a finite number: {s[:40]!r}")
    return f


def boolean(s: str) -> bool | None:
    if not s:
        return None
    low = s.lower()
    if low in ("true", "yes", "1"):
        return True
    if low in ("false", "no", "0"):
        return False
    raise BadValue(f"not a boolean: {s[:40]!r}")


# -- collections and user-defined types --------------------------------------------

_NUM = re.compile(r"-?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|NaN|Infinity)")
_BARE = re.compile(r"[A-Za-z0-9_.+\-]+")  # identifiers (UDT field names), uuids, blobs (0x..)
_WORDS = {"null": None, "true": True, "false": False, "True": True, "False": False}


def literal(s: str) -> Any:
    """A CQL collection literal as cqlsh prints it: maps and UDTs to dicts (UDT field names are
    bare words), lists/sets/tuples to lists, strings ('' is a quote), numbers, booleans, null.
    Empty: None."""
    if not s:
        return None
    value, i = _value(s, _ws(s, 0))
    if _ws(s, i) != len(s):
        raise BadValue(f"unexpected text after the value at {i}: {s[i:i + 20]!r}")
    return value


def _ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in " \t\r\n":
        i += 1
    return i


def _value(s: str, i: int) -> tuple[Any, int]:
    if i >= len(s):
        raise BadValue("unexpected end of the value")
    c = s[i]
    if c == "'":
        return _string(s, i)
    if c in "{[(":
        return _container(s, i)
    m = _NUM.match(s, i)
    if m and (m.end() == len(s) or s[m.end()] in " ,:}])\t\r\n"):
        t = m.group()
        if t in ("NaN", "-NaN", "Infinity", "-Infinity"):
            raise BadValue(f"not a finite number: {t}")
        return (float(t) if any(ch in t for ch in ".eE") else int(t)), m.end()
    m = _BARE.match(s, i)
    if not m:
        raise BadValue(f"unexpected character {c!r} at {i}")
    word = m.group()
    return (_WORDS[word] if word in _WORDS else word), m.end()


def _string(s: str, i: int) -> tuple[str, int]:
    out, j, n = [], i + 1, len(s)
    while True:
        k = s.find("'", j)
        if k < 0:
            raise BadValue("unterminated string")
        out.append(s[j:k])
        if k + 1 < n and s[k + 1] == "'":
            out.append("'")
            j = k + 2
            continue
        return "".join(out), k + 1


_CLOSE = {"{": "}", "[": "]", "(": ")"}


def _container(s: str, i: int) -> tuple[Any, int]:
    close = _CLOSE[s[i]]
    items: list = []
    pairs: dict = {}
    is_map = None
    i = _ws(s, i + 1)
    if i < len(s) and s[i] == close:
        return ({} if close == "}" else []), i + 1
    while True:
        v, i = _value(s, i)
        i = _ws(s, i)
        if close == "}" and i < len(s) and s[i] == ":":
            if is_map is False:
                raise BadValue("a set cannot hold key: value pairs")
            is_map = True
            w, i = _value(s, _ws(s, i + 1))
            if isinstance(v, (dict, list)):
                raise BadValue("a map key must be a scalar")
            pairs[v] = w
            i = _ws(s, i)
        else:
            if is_map:
                raise BadValue("a map entry needs key: value")
            is_map = False
            items.append(v)
        if i >= len(s):
            raise BadValue(f"unterminated {close}")
        if s[i] == ",":
            i = _ws(s, i + 1)
            continue
        if s[i] == close:
            return (pairs if is_map else items), i + 1
        raise BadValue(f"expected ',' or {close!r} at {i}, got {s[i]!r}")

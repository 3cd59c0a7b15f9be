"""The listing contract: one parser for limit and cursor, one answer shape, 422 naming the bad parameter."""

import base64
import datetime as dt
import json

import pytest

from fieldpipe import paging
from fieldpipe.problems import Problem

KEYSET = paging.Keyset("things", dt.datetime, int)
AT = dt.datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=dt.timezone.utc)


def _raw_cursor(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_defaults_and_round_trip():
    page = paging.from_query({}, KEYSET)
    assert (page.limit, page.after, page.fetch) == (paging.DEFAULT_LIMIT, None, paging.DEFAULT_LIMIT + 1)
    cursor = KEYSET.encode((AT, 7))
    assert paging.from_query({"cursor": cursor, "limit": "1000"}, KEYSET).after == (AT, 7)
    assert paging.from_query({"limit": "1"}, KEYSET).limit == 1


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "+5", "5.0", "", "ten", " 5", "1_0", "99999999999999999999"])
def test_bad_limit_is_422_naming_limit(limit):
    with pytest.raises(Problem) as caught:
        paging.from_query({"limit": limit}, KEYSET)
    assert caught.value.status == 422 and [e.field for e in caught.value.errors] == ["limit"]


@pytest.mark.parametrize("cursor", [
    "", "garbage", "!!!", _raw_cursor([AT.isoformat(), 7]),                     # the old, unversioned responses cursor
    _raw_cursor({"v": 2, "l": "things", "k": [AT.isoformat(), 7]}),             # a future version
    _raw_cursor({"v": 1, "l": "others", "k": [AT.isoformat(), 7]}),             # another listing's cursor
    _raw_cursor({"v": 1, "l": "things", "k": [AT.isoformat()]}),                # too short
    _raw_cursor({"v": 1, "l": "things", "k": [AT.isoformat(), "7"]}),           # a string where an id goes
    _raw_cursor({"v": 1, "l": "things", "k": [AT.isoformat(), True]}),          # bool is not an id
    _raw_cursor({"v": 1, "l": "things", "k": ["2026-11-29T10:00:00", 7]}),     # a time without its zone
    _raw_cursor({"v": 1, "l": "things", "k": ["yesterday", 7]}),
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
])
def test_bad_cursor_is_422_naming_cursor(cursor):
    with pytest.raises(Problem) as caught:
        paging.from_query({"cursor": cursor}, KEYSET)
    assert caught.value.status == 422 and [e.field for e in caught.value.errors] == ["cursor"]


def test_both_bad_are_named_together():
    with pytest.raises(Problem) as caught:
        paging.from_query({"cursor": "x", "limit": "0"}, KEYSET)
    assert sorted(e.field for e in caught.value.errors) == ["cursor", "limit"]


def test_answer_shape_and_next_cursor():
    page = paging.Page(KEYSET, limit=2)
    rows = [{"at": AT, "id": i} for i in range(3)]
    answer = page.answer(rows, key=lambda r: (r["at"], r["id"]), shape=lambda r: {"n": r["id"]})
    assert answer["items"] == [{"n": 0}, {"n": 1}]
    assert KEYSET.decode(answer["next_cursor"]) == (AT, 1)
    last = page.answer(rows[:2], key=lambda r: (r["at"], r["id"]))
    assert last == {"items": rows[:2], "next_cursor": None}
    assert page.answer([], key=lambda r: r) == {"items": [], "next_cursor": None}

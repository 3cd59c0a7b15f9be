"""What the API accepts: the domain of every value, in one place.

Every value the API stores must also be readable back by Python, editable, validatable by the rules
engine (which compares numbers in PostgreSQL and as float8) and exportable to a spreadsheet (xlsx and
Google Sheets: 15 significant digits, no dates before 1900, no control characters in cells). Values
outside these domains are refused at the door with 422 naming the field. docs/api-domains.md explains
each bound; the OpenAPI document renders them from here (`json_schema_*`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import re
from typing import Any, Iterator

UTC = dt.timezone.utc

# Text: no NUL (PostgreSQL cannot store it), no unpaired surrogates (not encodable as UTF-8), no control
# characters other than tab and newline (not allowed in spreadsheet cells or XML), no noncharacters U+FFFE/U+FFFF.
FORBIDDEN_TEXT = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
TEXT_RULE = "text without NUL, unpaired surrogates or control characters other than tab and newline"

TEXT_MAX_LENGTH = 1_000  # a `text` answer
# A `long_text` answer: even written as UTF-16 (up to 2 units a character) it fits a cell of Excel (32,767)
# and of Google Sheets (50,000).
LONG_TEXT_MAX_LENGTH = 10_000
STRING_MAX_LENGTH = LONG_TEXT_MAX_LENGTH  # any string anywhere in a request body
NAME_MAX_LENGTH = 200  # identifiers people type: a collector id
TITLE_MAX_LENGTH = 500  # form titles and question labels
KEY_MAX_LENGTH = 200  # an object key anywhere in a request body
QUERY_MAX_LENGTH = 2_000  # a query parameter's value
JSON_MAX_DEPTH = 32  # nesting of objects and arrays in a request body

# Numbers: integers exact in float8 (the rules engine), JavaScript and spreadsheets' doubles: the "safe"
# integers, |n| <= 2^53 - 1. Decimals: finite, |x| < 10^15 (15 significant digits stay exact in a spreadsheet).
INTEGER_MIN, INTEGER_MAX = -(2**53 - 1), 2**53 - 1
DECIMAL_MAX_ABS = 1e15

# Timestamps: what PostgreSQL, Python and spreadsheets all hold, read back in any time zone
# (hence a day's margin below year 10000); dates before 1900 do not exist in spreadsheets.
TIMESTAMP_MIN = dt.datetime(1900, 1, 1, tzinfo=UTC)
TIMESTAMP_MAX = dt.datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
DATE_MIN, DATE_MAX = dt.date(1900, 1, 1), dt.date(9999, 12, 31)


def text_problem(value: str, max_length: int = STRING_MAX_LENGTH) -> tuple[str, str] | None:
    """(code, message) when `value` is not acceptable text, else None."""
    bad = FORBIDDEN_TEXT.search(value)
    if bad:
        return "character", f"contains U+{ord(bad.group()):04X}; send {TEXT_RULE}"
    if len(value) > max_length:
        return "too_long", f"must be at most {max_length} characters"
    return None


def integer_problem(value: int) -> tuple[str, str] | None:
    if not INTEGER_MIN <= value <= INTEGER_MAX:
        return "range", f"must be between {INTEGER_MIN} and {INTEGER_MAX}"
    return None


def decimal_problem(value: float) -> tuple[str, str] | None:
    if value != value or not -DECIMAL_MAX_ABS < value < DECIMAL_MAX_ABS:
        return "range", f"must be a finite number between -{DECIMAL_MAX_ABS:.0e} and {DECIMAL_MAX_ABS:.0e} (exclusive)"
    return None


def timestamp_problem(value: dt.datetime) -> tuple[str, str] | None:
    """An aware datetime outside [TIMESTAMP_MIN, TIMESTAMP_MAX] in UTC (also one whose UTC value Python cannot hold)."""
    try:
        in_range = TIMESTAMP_MIN <= value.astimezone(UTC) <= TIMESTAMP_MAX
    except OverflowError:
        in_range = False
    if not in_range:
        return "range", (f"must fall between {TIMESTAMP_MIN.isoformat()} and {TIMESTAMP_MAX.isoformat()} "
                         "once converted to UTC")
    return None


def date_problem(value: dt.date) -> tuple[str, str] | None:
    if not DATE_MIN <= value <= DATE_MAX:
        return "range", f"must fall between {DATE_MIN.isoformat()} and {DATE_MAX.isoformat()}"
    return None


class BodyProblem(ValueError):
    """A request body outside the JSON domain: `field` names where (a dotted path; "" for the whole body)."""

    def __init__(self, field: str, code: str, message: str):
        super().__init__(message)
        self.field, self.code = field, code


def parse_json(raw: bytes | str) -> Any:
    """The parsed body; ValueError when malformed, BodyProblem when nested too deep. NaN and Infinity parse
    (as Python's json does) so that `body_problems` can name the field that holds one."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise BodyProblem("", "depth", f"nests objects and arrays more than {JSON_MAX_DEPTH} deep") from None


def json_value(value: Any) -> Any:
    """`json.dumps`'s `default` wherever fieldpipe writes JSON: timestamps and dates in ISO 8601, as the API shows
    them; decimals as numbers; anything else (a UUID) as its text."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def _path(parent: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{parent}[{part}]"
    return f"{parent}.{part}" if parent else part


def body_problems(value: Any) -> Iterator[BodyProblem]:
    """Every string (key or value) in a parsed body checked as text, numbers finite, depth bounded."""
    if not _body_is_clean(value):
        yield from _problems(value, "", 0)


def _body_is_clean(value: Any) -> bool:
    """True when `_problems` would find nothing. The common case, checked without building a path per value:
    a batch of a thousand submissions holds tens of thousands of strings, and one regex search over all of them
    joined costs less than a search each."""
    texts: list[str] = []
    keys: list[str] = []
    pending: list[tuple[Any, int]] = [([value], -1)]  # the body as the only child of a container above it
    while pending:
        container, depth = pending.pop()
        if depth >= JSON_MAX_DEPTH and container:
            return False
        if type(container) is dict:
            keys.extend(container)
            children = container.values()
        else:
            children = container
        for child in children:
            kind = type(child)
            if kind is str:
                texts.append(child)
            elif kind is dict or kind is list:
                pending.append((child, depth + 1))
            elif kind is float and not math.isfinite(child):
                return False
    return not (FORBIDDEN_TEXT.search("".join(texts)) or FORBIDDEN_TEXT.search("".join(keys))
                or max(map(len, texts), default=0) > STRING_MAX_LENGTH
                or max(map(len, keys), default=0) > KEY_MAX_LENGTH)


def _problems(value: Any, path: str, depth: int) -> Iterator[BodyProblem]:
    if depth > JSON_MAX_DEPTH:
        yield BodyProblem(path, "depth", f"nests objects and arrays more than {JSON_MAX_DEPTH} deep")
        return
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            yield BodyProblem(path, *problem)
    elif isinstance(value, float) and not math.isfinite(value):  # NaN, Infinity, or beyond float (1e400)
        yield BodyProblem(path, "type", "must be a number")
    elif isinstance(value, dict):
        for key, item in value.items():
            problem = text_problem(key, KEY_MAX_LENGTH)
            if problem:
                yield BodyProblem(_path(path, repr(key)[1:-1][:40]), "key", f"object key {problem[1]}")
                continue
            yield from _problems(item, _path(path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, _path(path, index), depth + 1)


def json_schema_string(max_length: int = STRING_MAX_LENGTH) -> dict:
    """The text domain as JSON Schema (`pattern` is ECMA-262 flavoured: the code points refused)."""
    return {"type": "string", "maxLength": max_length,
            "pattern": "^[^\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F\\uFFFE\\uFFFF]*$"}


def json_schema_integer() -> dict:
    return {"type": "integer", "minimum": INTEGER_MIN, "maximum": INTEGER_MAX}


def json_schema_decimal() -> dict:
    return {"type": "number", "exclusiveMinimum": -DECIMAL_MAX_ABS, "exclusiveMaximum": DECIMAL_MAX_ABS}


# What the document states of a timestamp's and a date's year (the exact bounds are in UTC, which a pattern cannot
# state; these years keep any offset within them): timestamps in 1901 to 9998, dates in 1900 to 9999.
TIMESTAMP_YEAR_PATTERN = "^(19(0[1-9]|[1-9][0-9])|[2-8][0-9]{3}|9([0-8][0-9]{2}|9[0-8][0-9]|99[0-8]))-"
DATE_YEAR_PATTERN = "^(19|[2-9][0-9])[0-9]{2}-"


def json_schema_timestamp() -> dict:
    return {"type": "string", "format": "date-time",
            "description": f"ISO 8601 with an offset; in UTC between {TIMESTAMP_MIN.isoformat()} and "
                           f"{TIMESTAMP_MAX.isoformat()}"}


ROW_ID_MAX = 2**63 - 1  # bigint


def parse_row_id(value: Any) -> int | None:
    """A database id given as an integer or as its ASCII digits (from a path); None when it cannot be one."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= ROW_ID_MAX:
        return None
    return value

"""The one listing contract every collection follows.

A collection answers ``{"items": [...], "next_cursor": "<opaque>" | null}`` and takes two query parameters:

- ``limit``: how many items per page, an integer from 1 to ``MAX_LIMIT``; ``DEFAULT_LIMIT`` when absent.
- ``cursor``: the ``next_cursor`` of the previous page, passed back unchanged. ``null`` means there is no
  next page. The cursor is opaque to clients: base64url (unpadded) of ``{"v": 1, "l": <listing>, "k": [...]}``,
  the version of this format, the listing it belongs to and the sort key of the last item served. Keyset paging,
  so a page costs the same at any depth and items added meanwhile are neither skipped nor repeated.

A bad ``limit`` or ``cursor`` (not an integer, out of range, a cursor we did not hand out, or one from another
listing) is a 422 ``validation-failed`` problem whose ``errors`` name the parameter. Filters keep their own names
and their own checks.

A listing declares its sort key once and uses it for the parse and the answer::

    RESPONSES = paging.Keyset("responses", dt.datetime, int)        # ORDER BY received_at, id

    def list_responses(conn, form, page: paging.Page) -> dict:
        clauses, params = ["form_id = %s"], [form["id"]]
        if page.after:
            clauses.append("(received_at, id) > (%s, %s)")
            params += page.after
        rows = conn.execute(f"... WHERE {' AND '.join(clauses)} ORDER BY received_at, id LIMIT %s",
                            (*params, page.fetch)).fetchall()
        return page.answer(rows, key=lambda r: (r["received_at"], r["id"]), shape=record_body)

    # in the route
    return responses.list_responses(conn, form, paging.from_query(request.args, responses.RESPONSES))
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fieldpipe.domains import ROW_ID_MAX, parse_json, text_problem, timestamp_problem
from fieldpipe.problems import FieldError, invalid

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_VERSION = 1

KeyType = type[int] | type[str] | type[dt.datetime]
_DIGITS = re.compile(r"[0-9]{1,7}")


@dataclass(frozen=True)
class Keyset:
    """A listing's name (cursors are only valid for the listing that issued them) and its sort key's types."""

    listing: str
    types: tuple[KeyType, ...]

    def __init__(self, listing: str, *types: KeyType) -> None:
        object.__setattr__(self, "listing", listing)
        object.__setattr__(self, "types", types)

    def encode(self, key: Sequence[Any]) -> str:
        values = [v.isoformat() if isinstance(v, dt.datetime) else v for v in key]
        raw = json.dumps({"v": CURSOR_VERSION, "l": self.listing, "k": values}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[Any, ...] | None:
        """The sort key in the cursor, or None when it is not a cursor this listing handed out."""
        try:
            data = parse_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or data.get("l") != self.listing:
            return None
        values = data.get("k")
        if not isinstance(values, list) or len(values) != len(self.types):
            return None
        key = []
        for value, type_ in zip(values, self.types):
            if type_ is dt.datetime:
                try:
                    value = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
                except ValueError:
                    value = None
                if value is None or value.tzinfo is None or timestamp_problem(value):
                    return None
            elif type(value) is not type_:  # bool is not an int here
                return None
            elif type_ is int and not -ROW_ID_MAX <= value <= ROW_ID_MAX:
                return None
            elif type_ is str and text_problem(value):
                return None
            key.append(value)
        return tuple(key)


@dataclass(frozen=True)
class Page:
    """What a listing needs to serve one page: its size, and the sort key to start after (None: from the start)."""

    keyset: Keyset
    limit: int = DEFAULT_LIMIT
    after: tuple[Any, ...] | None = None

    @property
    def fetch(self) -> int:
        """Rows to ask the database for: one more than the page, to know whether another page follows."""
        return self.limit + 1

    def answer(self, rows: Sequence[Any], key: Callable[[Any], Sequence[Any]],
               shape: Callable[[Any], Any] = lambda row: row) -> dict:
        """The listing's answer from up to `fetch` rows in sort order; `shape` builds each item's public form."""
        served = rows[: self.limit]
        more = len(rows) > self.limit
        return {"items": [shape(r) for r in served],
                "next_cursor": self.keyset.encode(key(served[-1])) if more else None}


def from_query(args: Mapping[str, str], keyset: Keyset) -> Page:
    """Parse `limit` and `cursor` from the query string; 422 naming each bad one."""
    errors: list[FieldError] = []
    limit = DEFAULT_LIMIT
    raw_limit = args.get("limit")
    if raw_limit is not None:
        if _DIGITS.fullmatch(raw_limit) and 1 <= int(raw_limit) <= MAX_LIMIT:
            limit = int(raw_limit)
        else:
            errors.append(FieldError("limit", "range", f"must be an integer from 1 to {MAX_LIMIT}"))
    after = None
    raw_cursor = args.get("cursor")
    if raw_cursor is not None:
        after = keyset.decode(raw_cursor)
        if after is None:
            errors.append(FieldError("cursor", "format", "pass the next_cursor of a previous page of this "
                                                         "listing unchanged"))
    if errors:
        raise invalid(errors)
    return Page(keyset, limit, after)

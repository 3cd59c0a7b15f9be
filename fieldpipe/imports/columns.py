"""The columns of a form's import file: the header check, the blank template and a row as a submission.

A file has the envelope columns (`submission_id`, `submitted_at`, `collector_id`, `collector_phone`,
`form_version`) and one column per question, headed by the question's key (or its label). Cells are
turned into the JSON types the API takes where they plainly are one (`"12"` into 12 for an integer
question, `yes` into true, `leak, dry` into a list); anything else is passed on as written, so the
API's own validation names the problem exactly as it would for a posted submission.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from typing import Any, Sequence

from fieldpipe.imports.files import Refused, blank_cell
from fieldpipe.problems import FieldError

ENVELOPE = {
    "submission_id": ("Submission id", "optional: a UUID; left empty, one is derived from the file and the row"),
    "submitted_at": ("Submitted at", "required: ISO 8601 with a time zone, e.g. 2026-11-20T10:15:00+05:30"),
    "collector_id": ("Collector id", "required: who collected it"),
    "collector_phone": ("Collector phone", "optional: E.164, e.g. +919812345678"),
    "form_version": ("Form version", "optional: the form version answered; empty means the current one"),
}
REQUIRED_ENVELOPE = ("submitted_at", "collector_id")
# A namespace of our own for ids derived from (file hash, row number).
DERIVED_ID_NAMESPACE = uuid.UUID("6f1d8c52-4d1e-4b7e-9a57-3c1f0a2b9e64")
INTEGER = re.compile(r"[+-]?\d+")
DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def column_of(error: FieldError) -> str:
    """The file column a validation error is about: `answers.age` is `age`, `collector.id` is `collector_id`."""
    name = error.field
    if name.startswith("answers."):
        return name[len("answers."):]
    return name.replace(".", "_")


def map_header(header: list[Any], questions: list[dict]) -> list[str | None]:
    """The column key of each header cell (None for an unnamed column), or Refused naming every problem."""
    keys = {**{k: k for k in ENVELOPE}, **{q["key"]: q["key"] for q in questions}}
    labels = {label.casefold(): key for key, (label, _) in ENVELOPE.items()}
    for q in questions:
        labels.setdefault(q["label"].casefold(), q["key"])
    columns: list[str | None] = []
    errors: list[tuple[int, str, str, str]] = []
    for cell in header:
        name = "" if cell is None else str(cell).strip()
        if not name:
            columns.append(None)
            continue
        key = keys.get(name) or labels.get(name.casefold())
        if key is None:
            errors.append((1, name, "unknown_column", "is neither a question of this form nor an envelope column"))
        elif key in columns:
            errors.append((1, name, "duplicate_column", f"column {key!r} appears more than once"))
        columns.append(key)
    required = list(REQUIRED_ENVELOPE) + [q["key"] for q in questions if q.get("required")]
    errors += [(1, key, "missing_column", "is required and missing from the header")
               for key in required if key not in columns]
    if errors:
        counts = {}
        for _, _, code, _ in errors:
            counts[code] = counts.get(code, 0) + 1
        summary = ", ".join(f"{n} {code.replace('_', ' ')}(s)" for code, n in counts.items())
        raise Refused(errors[0][2], f"the header row does not fit form's columns: {summary}", errors)
    return columns


def derived_ids(content_hash: str):
    """The id of each row number of a file: the same row of the same file always gets the same id, so
    importing a file again creates nothing.

    It is `uuid.uuid5(DERIVED_ID_NAMESPACE, f"{content_hash}:{row_number}")`, with the hash of the common
    prefix computed once per file rather than once per row.
    """
    prefix = hashlib.sha1(DERIVED_ID_NAMESPACE.bytes + f"{content_hash}:".encode())

    def derived_id(row_number: int) -> str:
        digest = prefix.copy()
        digest.update(str(row_number).encode())
        raw = bytearray(digest.digest()[:16])
        raw[6] = raw[6] & 0x0F | 0x50  # version 5
        raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
        hexed = raw.hex()
        return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"
    return derived_id


class RowReader:
    """Turns a file's rows into submissions; each column's conversion is chosen once, from the header."""

    def __init__(self, columns: list[str | None], questions: list[dict], content_hash: str):
        types = {q["key"]: q["type"] for q in questions}
        self.answers = [(i, key, CONVERSIONS.get(types[key], _text)) for i, key in enumerate(columns) if key in types]
        self.envelope = [(key, i) for i, key in enumerate(columns) if key in ENVELOPE]
        self.width = len(columns)
        self.derived_id = derived_ids(content_hash)

    def submission(self, cells: Sequence[Any], row_number: int) -> dict:
        """A row as the JSON submission the API takes; empty cells are left out, as unanswered."""
        if len(cells) < self.width:
            cells = [*cells, *[None] * (self.width - len(cells))]
        envelope = {key: cells[i] for key, i in self.envelope if not blank_cell(cells[i])}
        item: dict[str, Any] = {
            "submission_id": _text(envelope.get("submission_id")) or self.derived_id(row_number),
            "submitted_at": _timestamp(envelope.get("submitted_at")),
            "collector": {"id": _text(envelope.get("collector_id")), "phone": _text(envelope.get("collector_phone"))},
            "answers": {key: convert(cell) for i, key, convert in self.answers if not blank_cell(cell := cells[i])},
        }
        if "form_version" in envelope:
            item["form_version"] = _integer(envelope["form_version"])
        return item


def _text(cell: Any) -> str | None:
    if isinstance(cell, str):
        return cell.strip()
    if cell is None:
        return None
    if isinstance(cell, float) and cell.is_integer():  # a spreadsheet stores 7 as 7.0
        return str(int(cell))
    if isinstance(cell, (dt.datetime, dt.date)):
        return cell.isoformat()
    return str(cell).strip()


def _kept_text(cell: Any) -> str | None:
    """Text answers keep their spaces; a spreadsheet's number in a text column becomes its digits."""
    return cell if isinstance(cell, str) else _text(cell)


def _timestamp(cell: Any) -> Any:
    # A spreadsheet's date-time has no time zone: passed on, validation asks for one.
    return cell.isoformat() if isinstance(cell, dt.datetime) else _text(cell)


def _integer(cell: Any) -> Any:
    if isinstance(cell, str):
        return int(cell) if INTEGER.fullmatch(cell.strip()) else cell
    if isinstance(cell, float) and cell.is_integer():
        return int(cell)
    return cell


def _decimal(cell: Any) -> Any:
    if isinstance(cell, str) and DECIMAL.fullmatch(cell.strip()):
        return int(cell) if INTEGER.fullmatch(cell.strip()) else float(cell)
    return cell


def _boolean(cell: Any) -> Any:
    return cell if isinstance(cell, bool) else BOOLEANS.get(str(cell).strip().casefold(), cell)


def _date(cell: Any) -> Any:
    return cell.date().isoformat() if isinstance(cell, dt.datetime) else _text(cell)


def _choices(cell: Any) -> list[str]:
    """`leak, dry` (as our exports write them) or `leak dry` (as ODK and Kobo do)."""
    text = _text(cell)
    return [v for v in re.split(r"\s*,\s*" if "," in text else r"\s+", text) if v]


CONVERSIONS = {"integer": _integer, "decimal": _decimal, "boolean": _boolean, "date": _date,
               "multi_choice": _choices, "text": _kept_text, "long_text": _kept_text}

"""The layout of a form's export: which columns, in what order, and how each answer becomes a cell.

Columns are metadata first, then one per question in the order questions first appeared across ALL
the form's versions: a question added by a later version is a new column at the end, a removed one keeps
its column (older responses answered it). Labels come from the newest version that has the question.
A geopoint also gets one column per part (latitude, longitude, altitude, accuracy), as peers' flat exports
do; a repeat gets a worksheet of its own (fieldpipe/sheets/repeats.py), not a column.

Cells are typed Python values (str, int, float, bool, date, datetime, None); each target encodes them
(Sheets: USER_ENTERED with text kept as text; xlsx: native cell types).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import phonenumbers
import psycopg

from fieldpipe.answers import mask_mode

ID_COLUMN = "submission_id"
ANSWER_PREFIX = "answers."
PART_SEPARATOR = "#"  # "answers.gps#latitude": one part of a geopoint answer
GEOPOINT_PARTS = ("latitude", "longitude", "altitude", "accuracy")


@dataclass(frozen=True)
class Column:
    key: str  # "submission_id", ... or "answers.<question key>"
    label: str
    type: str = "text"
    mask: str | None = None  # forms.MASK_MODES


METADATA_COLUMNS = (
    Column(ID_COLUMN, "Submission ID"),
    Column("submitted_at", "Submitted at (UTC)", "timestamp"),
    Column("received_at", "Received at (UTC)", "timestamp"),
    Column("collector", "Collector"),
    Column("revision", "Revision", "integer"),
    Column("open_flags", "Open flags", "integer"),
)


def latest_questions(versions: list[list[dict]]) -> list[dict]:
    """Each question once, in the order questions first appeared, as the newest version that has it says."""
    order: list[str] = []
    latest: dict[str, dict] = {}
    for questions in versions:
        for question in questions:
            if question["key"] not in latest:
                order.append(question["key"])
            latest[question["key"]] = question
    return [latest[key] for key in order]


def question_columns(versions: list[list[dict]]) -> list[Column]:
    """Question columns from the versions' question lists, oldest version first."""
    columns = []
    for question in latest_questions(versions):
        if question["type"] == "repeat":
            continue
        key, label = ANSWER_PREFIX + question["key"], question["label"]
        columns.append(Column(key, label, question["type"], mask_mode(question)))
        if question["type"] == "geopoint":
            columns += [Column(f"{key}{PART_SEPARATOR}{part}", f"{label} ({part})", "decimal", mask_mode(question))
                        for part in GEOPOINT_PARTS]
    return columns


def form_columns(conn: psycopg.Connection, form_id: int) -> list[Column]:
    versions = conn.execute(
        "SELECT questions FROM form_versions WHERE form_id = %s ORDER BY version", (form_id,)
    ).fetchall()
    return list(METADATA_COLUMNS) + question_columns([v["questions"] for v in versions])


def mask_phone(phone: str) -> str:
    """+919876543210 -> +91******3210: the country stays readable, the subscriber does not."""
    try:
        country = str(phonenumbers.parse(phone, None).country_code)
    except phonenumbers.NumberParseException:
        country = ""
    digits = phone.lstrip("+")[len(country):]
    return f"+{country}" + "*" * max(len(digits) - 4, 0) + digits[-4:]


def pseudonym(value: Any) -> str:
    """The `hash` mask: the same 16 hex digits as SQL's reporting.pseudonym(answers ->> key)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def mask_value(value: Any, qtype: str, mode: str = "partial") -> str:
    if mode == "hash":
        return pseudonym(value)
    if mode == "partial" and qtype == "phone":
        return mask_phone(str(value))
    if mode == "partial" and qtype == "email" and "@" in str(value):
        local, domain = str(value).split("@", 1)
        return local[:1] + "***@" + domain
    return "***"  # fixed width, so the mask does not leak the length


def answer_cell(column: Column, value: Any) -> Any:
    if value is None or value == "" or value == []:
        return None
    if column.mask:
        return mask_value(value, column.type, column.mask)
    if PART_SEPARATOR in column.key:
        return value.get(column.key.rsplit(PART_SEPARATOR, 1)[1]) if isinstance(value, dict) else None
    if column.type == "multi_choice":
        return ", ".join(value)
    if column.type == "geopoint":
        return point_text(value)
    if column.type in ("geotrace", "geoshape"):
        return "; ".join(point_text(p) for p in value)
    if column.type == "date":
        return dt.date.fromisoformat(value)
    return value


def point_text(point: dict) -> str:
    """The ODK form of a location, "latitude longitude altitude accuracy", as devices send it."""
    return " ".join(repr(point[p]) for p in GEOPOINT_PARTS if point.get(p) is not None)


def answer_key(column: Column) -> str:
    return column.key[len(ANSWER_PREFIX):].split(PART_SEPARATOR, 1)[0]


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def row_cells(columns: list[Column], response: dict) -> dict[str, Any]:
    """One response (a row of `responses` plus `open_flags`) as {column key: cell value}."""
    meta = {
        ID_COLUMN: str(response["submission_id"]),
        "submitted_at": _utc(response["submitted_at"]),
        "received_at": _utc(response["received_at"]),
        "collector": response["collector_id"],
        "revision": response["revision"],
        "open_flags": response.get("open_flags") or 0,
    }
    answers = response["answers"]
    return {c.key: meta[c.key] if c.key in meta else answer_cell(c, answers.get(answer_key(c)))
            for c in columns}

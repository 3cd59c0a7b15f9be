"""Guardian contacts of a student: name, relation, phone (E.164), preferred language and SMS opt-out.

Shared by enrollment and announcements: whoever reads guardians reads them from the `guardians` table.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from fieldpipe.answers import AnswerError, normalize_phone
from fieldpipe.problems import FieldError

RELATIONS = ("mother", "father", "grandmother", "grandfather", "sibling", "guardian", "other")
LANGUAGE_PATTERN = re.compile(r"^[a-z]{2}$")
DEFAULT_LANGUAGE = "hi"
MAX_GUARDIANS = 4
MAX_NAME_LENGTH = 200


def parse_guardian(entry: Any, where: str) -> tuple[dict | None, list[FieldError]]:
    if not isinstance(entry, dict):
        return None, [FieldError(where, "type", "must be an object")]
    errors: list[FieldError] = []
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_NAME_LENGTH:
        errors.append(FieldError(f"{where}.name", "required", f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters"))
    relation = entry.get("relation")
    if relation not in RELATIONS:
        errors.append(FieldError(f"{where}.relation", "enum", f"must be one of {', '.join(RELATIONS)}"))
    phone = entry.get("phone")
    if phone not in (None, ""):
        try:
            phone = normalize_phone(phone)
        except AnswerError as err:
            errors.append(FieldError(f"{where}.phone", err.code, str(err)))
    else:
        phone = None
    language = entry.get("preferred_language", DEFAULT_LANGUAGE)
    if not isinstance(language, str) or not LANGUAGE_PATTERN.fullmatch(language):
        errors.append(FieldError(f"{where}.preferred_language", "pattern", "must be a two-letter ISO 639-1 code such as hi or en"))
    opted_out = entry.get("opted_out", False)
    if not isinstance(opted_out, bool):
        errors.append(FieldError(f"{where}.opted_out", "type", "must be true or false"))
    if errors:
        return None, errors
    return {"name": name.strip(), "relation": relation, "phone": phone, "preferred_language": language,
            "opted_out": opted_out}, []


def parse_guardians(value: Any, field: str = "guardians", require_phone: bool = True) -> tuple[list[dict], list[FieldError]]:
    """Validated guardians, or the errors; with `require_phone`, at least one of them must have a phone."""
    if not isinstance(value, list) or not value:
        return [], [FieldError(field, "required", "must be a non-empty list of guardians")]
    if len(value) > MAX_GUARDIANS:
        return [], [FieldError(field, "too_many", f"at most {MAX_GUARDIANS} guardians")]
    guardians, errors = [], []
    for index, entry in enumerate(value):
        guardian, entry_errors = parse_guardian(entry, f"{field}[{index}]")
        errors += entry_errors
        if guardian is not None:
            guardians.append(guardian)
    if not errors and require_phone and not any(g["phone"] for g in guardians):
        errors.append(FieldError(field, "phone_required", "at least one guardian needs a phone number"))
    return guardians, errors


def store_guardians(conn: psycopg.Connection, student_id: int, guardians: list[dict]) -> None:
    """Replace the student's guardians by `guardians`, in order."""
    conn.execute("DELETE FROM guardians WHERE student_id = %s", (student_id,))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO guardians (student_id, position, name, relation, phone, language, opted_out)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [(student_id, position, g["name"], g["relation"], g["phone"], g["preferred_language"], g["opted_out"])
             for position, g in enumerate(guardians, start=1)],
        )


def guardians_of(conn: psycopg.Connection, student_ids: list[int]) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {sid: [] for sid in student_ids}
    for row in conn.execute(
            """SELECT student_id, name, relation, phone, language, opted_out FROM guardians
                WHERE student_id = ANY(%s) ORDER BY student_id, position""", (student_ids,)):
        found[row["student_id"]].append({"name": row["name"], "relation": row["relation"], "phone": row["phone"],
                                         "preferred_language": row["language"], "opted_out": row["opted_out"]})
    return found

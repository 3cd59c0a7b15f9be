"""Repair responses stored before the API refused values outside their domain (fieldpipe/domains.py).

Such a row could poison its form: a `submitted_at` Python cannot read broke reading, listing, editing and
exporting the form; an integer beyond float8 broke validation; a control character broke the workbook
export. `fieldpipe repair responses <org> <form>` lists them; with `--apply` each is repaired:

- a `submitted_at` outside the domain becomes the time the server received the response;
- an answer outside its question's domain (number out of range, date out of range, text longer than
  allowed) is cleared; text with forbidden characters loses those characters;

as a new revision of the response (so validation and the exports pick it up), with earlier revisions'
unreadable timestamps set the same way. Every changed value is kept, as text, in `response_repairs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import psycopg
from psycopg.types.json import Jsonb, set_json_loads

from fieldpipe import domains
from fieldpipe.answers import AnswerError, answer_check, is_empty

MAX_PARSED_DIGITS = 1000  # longer integers are kept as text: they are out of range whatever they say


@dataclass
class Repair:
    response_id: int
    submission_id: str
    revision: int
    field: str
    problem: str
    original: str
    repaired_to: Any  # None: cleared


def _lenient_int(text: str) -> int | str:
    return int(text) if len(text) <= MAX_PARSED_DIGITS else text


def _original(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _repair_answer(question: dict, value: Any) -> tuple[str, Any] | None:
    """(problem, repaired value or None to clear) for an answer outside its domain, else None."""
    if is_empty(value):
        return None
    if isinstance(value, str) and question["type"] not in ("integer", "decimal"):
        cleaned = domains.FORBIDDEN_TEXT.sub("", value)
        if cleaned != value:
            again = _repair_answer(question, cleaned)
            return "character", (again[1] if again else cleaned) or None
    try:
        answer_check(question)(value)
    except AnswerError as err:
        if err.code in ("range", "too_long", "character", "type"):
            return err.code, None
    return None


def count(conn: psycopg.Connection, org_slug: str, form_slug: str) -> int:
    """How many responses `find` walks (for a progress bar)."""
    return conn.execute(
        """SELECT count(*) AS n FROM responses r JOIN forms f ON f.id = r.form_id
             JOIN organizations o ON o.id = f.organization_id WHERE o.slug = %s AND f.slug = %s""",
        (org_slug, form_slug)).fetchone()["n"]


def find(conn: psycopg.Connection, org_slug: str, form_slug: str,
         progress: Callable[[int], object] = lambda n: None) -> list[Repair]:
    """Every value of the form's current responses and revisions outside its domain; `progress(1)` per
    response read."""
    set_json_loads(lambda text: json.loads(text, parse_int=_lenient_int), conn)
    form = conn.execute(
        """SELECT f.id FROM forms f JOIN organizations o ON o.id = f.organization_id
            WHERE o.slug = %s AND f.slug = %s""", (org_slug, form_slug)).fetchone()
    if form is None:
        raise LookupError(f"form {org_slug}/{form_slug} does not exist")
    bounds = {"form": form["id"], "min": domains.TIMESTAMP_MIN, "max": domains.TIMESTAMP_MAX}
    repairs: list[Repair] = []
    # Timestamps are compared in SQL and read as text: Python cannot read the poisoned ones.
    for row in conn.execute(
            """SELECT r.id, r.submission_id::text, rr.revision, rr.submitted_at::text AS original
                 FROM responses r JOIN response_revisions rr ON rr.response_id = r.id
                WHERE r.form_id = %(form)s AND NOT rr.submitted_at BETWEEN %(min)s AND %(max)s
                ORDER BY r.id, rr.revision""", bounds):
        repairs.append(Repair(row["id"], row["submission_id"], row["revision"], "submitted_at", "range",
                              row["original"], "received_at"))
    with conn.cursor(name="repair_scan") as cursor:
        cursor.execute(
            """SELECT r.id, r.submission_id::text, r.revision, r.answers, v.questions
                 FROM responses r JOIN form_versions v ON v.id = r.form_version_id
                WHERE r.form_id = %(form)s ORDER BY r.id""", bounds)
        for row in cursor:
            progress(1)
            for question in row["questions"]:
                key = question["key"]
                if key in row["answers"]:
                    found = _repair_answer(question, row["answers"][key])
                    if found:
                        repairs.append(Repair(row["id"], row["submission_id"], row["revision"], f"answers.{key}",
                                              found[0], _original(row["answers"][key]), found[1]))
    return repairs


def apply(conn: psycopg.Connection, repairs: list[Repair], progress: Callable[[int], object] = lambda n: None) -> int:
    """Make the repairs (one new revision per response, `progress(1)` after each); returns the number of
    responses repaired."""
    by_response: dict[int, list[Repair]] = {}
    for repair in repairs:
        by_response.setdefault(repair.response_id, []).append(repair)
    for response_id, items in by_response.items():
        conn.execute(
            """UPDATE response_revisions SET submitted_at = r.received_at
                 FROM responses r
                WHERE r.id = %(id)s AND response_revisions.response_id = r.id
                  AND NOT response_revisions.submitted_at BETWEEN %(min)s AND %(max)s""",
            {"id": response_id, "min": domains.TIMESTAMP_MIN, "max": domains.TIMESTAMP_MAX})
        answers = conn.execute("SELECT answers FROM responses WHERE id = %s FOR UPDATE",
                               (response_id,)).fetchone()["answers"]
        for item in items:
            if item.field.startswith("answers."):
                key = item.field[len("answers."):]
                if item.repaired_to is None:
                    answers.pop(key, None)
                else:
                    answers[key] = item.repaired_to
        row = conn.execute(
            """UPDATE responses SET revision = revision + 1, answers = %(answers)s, updated_at = clock_timestamp(),
                      submitted_at = CASE WHEN submitted_at BETWEEN %(min)s AND %(max)s THEN submitted_at
                                          ELSE received_at END
                WHERE id = %(id)s RETURNING *""",
            {"id": response_id, "answers": Jsonb(answers), "min": domains.TIMESTAMP_MIN,
             "max": domains.TIMESTAMP_MAX}).fetchone()
        conn.execute(
            """INSERT INTO response_revisions (response_id, revision, form_version_id, collector_id, collector_phone,
                                               submitted_at, answers, created_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (row["id"], row["revision"], row["form_version_id"], row["collector_id"], row["collector_phone"],
             row["submitted_at"], Jsonb(answers), row["updated_at"]))
        conn.execute(
            """INSERT INTO response_repairs (response_id, revision, field, original, repaired_to)
               SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[])""",
            (response_id, [i.revision for i in items], [i.field for i in items], [i.original for i in items],
             [None if i.repaired_to is None else _original(i.repaired_to) for i in items]))
        progress(1)
    return len(by_response)

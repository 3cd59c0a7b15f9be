"""Submissions for an assessment, one batch per class: student marks or grades, class results, exam answers.

Idempotent like responses: the unique key (assessment_id, submission_id) and `ON CONFLICT DO NOTHING`
keep one batch per id; a repost with the same content (same `content_hash`) is a duplicate, different
content is a conflict (409). A retried post is recognised before re-validation, so a batch accepted
yesterday stays accepted even if a student has since left. Every entry is validated and every bad entry
reported (422); a batch is stored whole or not at all.

Newer marks for the same (assessment, student, item) supersede older ones (`superseded_at`); the history
stays, so summaries of past days can be recomputed. Batches for one class are serialized by an advisory
lock so two teachers' phones cannot both make a mark current.
"""

from __future__ import annotations

import decimal
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import psycopg

from fieldpipe.answers import content_hash
from fieldpipe.domains import decimal_problem, parse_row_id
from fieldpipe.assessments.definitions import get_assessment_row, get_items
from fieldpipe.assessments.exams import lock_exam
from fieldpipe.assessments.roster import get_class_row
from fieldpipe.problems import FieldError, Problem, invalid
from fieldpipe.responses import parse_collector_id, parse_submission_id, parse_timestamp

MAX_ENTRIES = 5000
MAX_CLASS_SIZE = 10_000  # students present or cleared in one class


@dataclass
class Batch:
    """A checked envelope: the assessment, the class and what identifies the batch."""

    assessment: dict
    klass: dict
    submission_id: uuid.UUID
    submitted_at: Any
    collector_id: str
    entries: list
    hash: str


def _envelope(conn: psycopg.Connection, organization_id: int, assessment_id: Any, kind: str, payload: Any,
              entries_field: str) -> tuple[Batch | None, list[FieldError]]:
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    if assessment["submission_level"] != kind:
        raise invalid([FieldError("", "wrong_level", f"assessment {assessment['id']} takes "
                                                     f"{assessment['submission_level']}-level submissions, not {kind}-level")])
    errors: list[FieldError] = []
    submission_id = parse_submission_id(payload.get("submission_id"), errors)
    submitted_at = parse_timestamp(payload.get("submitted_at"), "submitted_at", errors)
    collector_id = parse_collector_id(payload.get("collector"), errors)
    entries = payload.get(entries_field)
    if not isinstance(entries, list) or not entries:
        errors.append(FieldError(entries_field, "required", "must be a non-empty list"))
    elif len(entries) > MAX_ENTRIES:
        errors.append(FieldError(entries_field, "too_many", f"at most {MAX_ENTRIES} entries per batch"))
    klass = None
    try:
        klass = get_class_row(conn, organization_id, payload.get("class_id"))
    except Problem:
        errors.append(FieldError("class_id", "unknown", "is not a class of this organization"))
    if klass is not None and conn.execute(
            "SELECT 1 FROM assessment_classes WHERE assessment_id = %s AND class_id = %s",
            (assessment["id"], klass["id"])).fetchone() is None:
        errors.append(FieldError("class_id", "not_assigned", f"the assessment does not apply to class {klass['id']}"))
    if (submitted_at is not None and assessment["deadline"] is not None
            and submitted_at > assessment["deadline"]):
        errors.append(FieldError("submitted_at", "closed", f"the deadline was {assessment['deadline'].isoformat()}"))
    if assessment["closed_at"] is not None:
        errors.append(FieldError("", "exam_closed", f"exam {assessment['id']} was closed at "
                                                    f"{assessment['closed_at'].isoformat()}"))
    if errors:
        return None, errors
    return Batch(assessment, klass, submission_id, submitted_at, collector_id, entries,
                 content_hash({"class_id": klass["id"], entries_field: entries})), []


def _receipt(row: dict) -> dict:
    return {"submission_id": str(row["submission_id"]), "assessment_id": row["assessment_id"],
            "class_id": row["class_id"], "kind": row["kind"], "entries": row["entry_count"],
            "submitted_at": row["submitted_at"], "received_at": row["received_at"]}


def _previous(conn: psycopg.Connection, batch: Batch) -> dict | None:
    """The stored batch with this id, as a duplicate's receipt; a conflict when its content differs."""
    row = conn.execute("SELECT * FROM assessment_submissions WHERE assessment_id = %s AND submission_id = %s",
                       (batch.assessment["id"], batch.submission_id)).fetchone()
    if row is None:
        return None
    if row["content_hash"] != batch.hash:
        raise Problem("submission-conflict", f"submission {batch.submission_id} was already received with "
                                             "different content; send corrections under a new submission_id")
    return _receipt(row)


def _submit(conn: psycopg.Connection, organization_id: int, assessment_id: Any, kind: str, payload: Any, entries_field: str,
            check_entries: Callable[[psycopg.Connection, Batch], tuple[list[tuple], list[FieldError]]],
            store_rows: Callable[[psycopg.Connection, Batch, int, list[tuple]], None]) -> tuple[dict, bool]:
    """Shared flow of the three kinds: envelope, lock, duplicate or conflict, entry checks, store.
    Returns the receipt and whether the batch was new."""
    batch, errors = _envelope(conn, organization_id, assessment_id, kind, payload, entries_field)
    if batch is None:
        raise invalid(errors)
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"assessment:{batch.assessment['id']}:class:{batch.klass['id']}",))
    previous = _previous(conn, batch)
    if previous is not None:
        return previous, False
    rows, errors = check_entries(conn, batch)
    if errors:
        bad_entries = len({e.field.split(".")[0] for e in errors})
        raise invalid(errors, f"{bad_entries} of {len(batch.entries)} entries failed validation; nothing was stored")
    header = conn.execute(
        """INSERT INTO assessment_submissions (assessment_id, class_id, submission_id, kind, collector_id,
                                               submitted_at, entry_count, content_hash)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
        (batch.assessment["id"], batch.klass["id"], batch.submission_id, kind, batch.collector_id,
         batch.submitted_at, len(batch.entries), batch.hash),
    ).fetchone()
    store_rows(conn, batch, header["id"], rows)
    return _receipt(header), True


# --- student checks shared by marks and exam answers -------------------------------------------------------------

def _students(conn: psycopg.Connection, assessment: dict, ids: list[int]) -> dict[int, dict]:
    return {r["id"]: r for r in conn.execute(
        """SELECT st.id, st.class_id, st.deleted_at, st.left_on FROM students st
             JOIN classes c ON c.id = st.class_id JOIN schools s ON s.id = c.school_id
            WHERE s.organization_id = %s AND st.id = ANY(%s)""",
        (assessment["organization_id"], ids))}


def _check_student(student_id: Any, known: dict[int, dict], class_id: int, where: str) -> FieldError | None:
    if isinstance(student_id, bool) or not isinstance(student_id, int) or student_id not in known:
        return FieldError(f"{where}.student_id", "unknown_student", f"student {student_id!r} does not exist")
    student = known[student_id]
    if student["deleted_at"] is not None or student["left_on"] is not None:
        return FieldError(f"{where}.student_id", "deleted_student", f"student {student_id} has left the school")
    if student["class_id"] != class_id:
        return FieldError(f"{where}.student_id", "other_class",
                          f"student {student_id} is in class {student['class_id']}, not {class_id}")
    return None


def _entry_student_ids(entries: list) -> list[int]:
    return [e["student_id"] for e in entries if isinstance(e, dict) and parse_row_id(e.get("student_id")) is not None]


def _keyed(by_key: dict[str, dict], key: Any) -> dict | None:
    """The item an entry names; None for an unknown key or one that is not a string."""
    return by_key.get(key) if isinstance(key, str) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and decimal_problem(value) is None


def _grade_for(marks: decimal.Decimal, max_marks: decimal.Decimal, scale: list[dict]) -> str | None:
    """The best grade whose min_percent the marks reach; None without a scale."""
    percent = marks * 100 / max_marks
    return next((step["grade"] for step in scale if percent >= decimal.Decimal(str(step["min_percent"]))), None)


# --- student-level: marks or grades per student per item ---------------------------------------------------------

def _check_marks(conn: psycopg.Connection, batch: Batch) -> tuple[list[tuple], list[FieldError]]:
    assessment, class_id = batch.assessment, batch.klass["id"]
    items = {i["key"]: i for i in get_items(conn, assessment["id"])}
    by_grade = assessment["evaluation"] == "Grade"
    field, other = ("grades", "marks") if by_grade else ("marks", "grades")
    grades = {step["grade"] for step in assessment["grade_scale"]}
    known = _students(conn, assessment, _entry_student_ids(batch.entries))
    rows, errors, seen = [], [], set()
    for index, entry in enumerate(batch.entries):
        where = f"entries[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "type", "must be an object {student_id, is_present, " + field + "}"))
            continue
        entry_errors = []
        problem = _check_student(entry.get("student_id"), known, class_id, where)
        if problem:
            entry_errors.append(problem)
        elif entry["student_id"] in seen:
            entry_errors.append(FieldError(f"{where}.student_id", "duplicate", "the student appears twice in the batch"))
        present = entry.get("is_present")
        if not isinstance(present, bool):
            entry_errors.append(FieldError(f"{where}.is_present", "required", "must be true or false"))
        values = entry.get(field, {})
        if other in entry:
            entry_errors.append(FieldError(f"{where}.{other}", "not_allowed",
                                           f"this assessment is evaluated by {assessment['evaluation']}: send {field}"))
        if not isinstance(values, dict):
            entry_errors.append(FieldError(f"{where}.{field}", "type", "must be an object of item key to value"))
            values = {}
        if present is False and values:
            entry_errors.append(FieldError(f"{where}.{field}", "absent", "an absent student has no " + field))
        if present is True and not values:
            entry_errors.append(FieldError(f"{where}.{field}", "required", "a present student needs " + field))
        entry_rows = []
        for key, value in values.items():
            item = items.get(key)
            if item is None:
                entry_errors.append(FieldError(f"{where}.{field}.{key}", "unknown_item", "is not an item of this assessment"))
            elif by_grade:
                if not isinstance(value, str) or value not in grades:
                    entry_errors.append(FieldError(f"{where}.grades.{key}", "grade", f"must be one of {', '.join(sorted(grades))}"))
                else:
                    entry_rows.append((item["id"], True, None, value))
            elif not _is_number(value) or value < 0:
                entry_errors.append(FieldError(f"{where}.marks.{key}", "type", "must be a number of marks, 0 or more"))
            elif value > item["max_marks"]:
                entry_errors.append(FieldError(f"{where}.marks.{key}", "marks_above_max",
                                               f"{value} is above the maximum of {item['max_marks']}"))
            else:
                marks = decimal.Decimal(str(value))
                entry_rows.append((item["id"], True, marks, _grade_for(marks, item["max_marks"], assessment["grade_scale"])))
        if present is False:
            entry_rows = [(item["id"], False, None, None) for item in items.values()]
        if entry_errors:
            errors += entry_errors
            continue
        seen.add(entry["student_id"])
        rows += [(entry["student_id"], *row) for row in entry_rows]
    return rows, errors


def _store_marks(conn: psycopg.Connection, batch: Batch, submission_pk: int, rows: list[tuple]) -> None:
    columns = list(zip(*rows))
    params = {"assessment": batch.assessment["id"], "class": batch.klass["id"], "pk": submission_pk,
              "students": list(columns[0]), "items": list(columns[1]), "present": list(columns[2]),
              "marks": list(columns[3]), "grades": list(columns[4])}
    conn.execute(
        """UPDATE student_marks m SET superseded_at = now()
             FROM unnest(%(students)s::bigint[], %(items)s::bigint[]) AS t(student_id, item_id)
            WHERE m.assessment_id = %(assessment)s AND m.student_id = t.student_id AND m.item_id = t.item_id
              AND m.superseded_at IS NULL""", params)
    conn.execute(
        """INSERT INTO student_marks (submission_pk, assessment_id, class_id, student_id, item_id, is_present, marks, grade)
           SELECT %(pk)s, %(assessment)s, %(class)s, * FROM unnest(%(students)s::bigint[], %(items)s::bigint[],
                  %(present)s::boolean[], %(marks)s::numeric[], %(grades)s::text[])""", params)


def submit_student_marks(conn: psycopg.Connection, organization_id: int, assessment_id: Any, payload: Any) -> tuple[dict, bool]:
    return _submit(conn, organization_id, assessment_id, "student", payload, "entries", _check_marks, _store_marks)


# --- class-level: per item, students present and students cleared -------------------------------------------------

def _check_class_results(conn: psycopg.Connection, batch: Batch) -> tuple[list[tuple], list[FieldError]]:
    items = {i["key"]: i for i in get_items(conn, batch.assessment["id"])}
    rows, errors, seen = [], [], set()
    for index, entry in enumerate(batch.entries):
        where = f"results[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "type", "must be an object {item, present, cleared}"))
            continue
        item = _keyed(items, entry.get("item"))
        present, cleared = entry.get("present"), entry.get("cleared")
        entry_errors = []
        if item is None:
            entry_errors.append(FieldError(f"{where}.item", "unknown_item", f"{entry.get('item')!r} is not an item of this assessment"))
        elif item["id"] in seen:
            entry_errors.append(FieldError(f"{where}.item", "duplicate", "the item appears twice in the batch"))
        for name, value in (("present", present), ("cleared", cleared)):
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CLASS_SIZE:
                entry_errors.append(FieldError(f"{where}.{name}", "type",
                                               f"must be a whole number from 0 to {MAX_CLASS_SIZE}"))
        if not entry_errors and cleared > present:
            entry_errors.append(FieldError(f"{where}.cleared", "cleared_above_present",
                                           f"{cleared} students cleared but only {present} were present"))
        if entry_errors:
            errors += entry_errors
            continue
        seen.add(item["id"])
        rows.append((item["id"], present, cleared))
    return rows, errors


def _store_class_results(conn: psycopg.Connection, batch: Batch, submission_pk: int, rows: list[tuple]) -> None:
    items, present, cleared = (list(c) for c in zip(*rows))
    params = {"assessment": batch.assessment["id"], "class": batch.klass["id"], "pk": submission_pk,
              "items": items, "present": present, "cleared": cleared}
    conn.execute(
        """UPDATE class_results SET superseded_at = now()
            WHERE assessment_id = %(assessment)s AND class_id = %(class)s AND item_id = ANY(%(items)s)
              AND superseded_at IS NULL""", params)
    conn.execute(
        """INSERT INTO class_results (submission_pk, assessment_id, class_id, item_id, students_present, students_cleared)
           SELECT %(pk)s, %(assessment)s, %(class)s, * FROM unnest(%(items)s::bigint[], %(present)s::int[], %(cleared)s::int[])""",
        params)


def submit_class_results(conn: psycopg.Connection, organization_id: int, assessment_id: Any, payload: Any) -> tuple[dict, bool]:
    return _submit(conn, organization_id, assessment_id, "class", payload, "results", _check_class_results, _store_class_results)


# --- exams: students' answers, stored as they come and graded by the DAG ---------------------------------------

def _check_answers(conn: psycopg.Connection, batch: Batch) -> tuple[list[tuple], list[FieldError]]:
    questions = {i["key"]: i for i in get_items(conn, batch.assessment["id"])}
    known = _students(conn, batch.assessment, _entry_student_ids(batch.entries))
    rows, errors = [], []
    for index, entry in enumerate(batch.entries):
        where = f"answers[{index}]"
        if not isinstance(entry, dict):
            errors.append(FieldError(where, "type", "must be an object {student_id, question, answer}"))
            continue
        entry_errors = []
        problem = _check_student(entry.get("student_id"), known, batch.klass["id"], where)
        if problem:
            entry_errors.append(problem)
        question = _keyed(questions, entry.get("question"))
        answer = entry.get("answer")
        if question is None:
            entry_errors.append(FieldError(f"{where}.question", "unknown_question",
                                           f"{entry.get('question')!r} is not a question of this exam"))
        elif answer not in question["choices"]:
            entry_errors.append(FieldError(f"{where}.answer", "choice", f"must be one of {', '.join(question['choices'])}"))
        if entry_errors:
            errors += entry_errors
            continue
        rows.append((entry["student_id"], question["id"], answer))
    return rows, errors


def _store_answers(conn: psycopg.Connection, batch: Batch, submission_pk: int, rows: list[tuple]) -> None:
    students, questions, answers = (list(c) for c in zip(*rows))
    conn.execute(
        """INSERT INTO exam_answers (submission_pk, assessment_id, class_id, student_id, item_id, answer)
           SELECT %s, %s, %s, * FROM unnest(%s::bigint[], %s::bigint[], %s::text[])""",
        (submission_pk, batch.assessment["id"], batch.klass["id"], students, questions, answers))


def submit_exam_answers(conn: psycopg.Connection, organization_id: int, assessment_id: Any, payload: Any) -> tuple[dict, bool]:
    if (exam_id := parse_row_id(assessment_id)) is not None:
        lock_exam(conn, exam_id, shared=True)  # a close waits for this batch, or this batch sees it closed
    return _submit(conn, organization_id, assessment_id, "exam", payload, "answers", _check_answers, _store_answers)

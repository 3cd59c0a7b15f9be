"""Read-back of what the app sent: the current marks (or grades) per student, and the current class results
per class and item, in the shape they were posted, so a teacher's phone shows the marks entered so far.

Each page carries an ETag that is the hash of exactly that page: the app sends it back as If-None-Match and
gets 304 while nothing on the page changed (a retried duplicate batch changes nothing).
"""

from __future__ import annotations

from typing import Any

import psycopg

from fieldpipe import paging
from fieldpipe.assessments.definitions import etag_of, get_assessment_row
from fieldpipe.problems import FieldError, invalid

STUDENT_SUBMISSIONS = paging.Keyset("submissions-student", int, int)  # (class id, student id)
CLASS_SUBMISSIONS = paging.Keyset("submissions-class", int, int)  # (class id, item position)


def _assessment(conn: psycopg.Connection, organization_id: int, assessment_id: Any, level: str,
                class_id: int | None) -> dict:
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    if assessment["submission_level"] != level:
        raise invalid([FieldError("", "wrong_level", f"assessment {assessment['id']} takes "
                                                     f"{assessment['submission_level']}-level submissions, not {level}-level")])
    if class_id is not None and conn.execute(
            "SELECT 1 FROM assessment_classes WHERE assessment_id = %s AND class_id = %s",
            (assessment["id"], class_id)).fetchone() is None:
        raise invalid([FieldError("class_id", "not_assigned", f"the assessment does not apply to class {class_id}")])
    return assessment


def _filters(class_id: int | None, page: paging.Page, prefix: str, second: str) -> tuple[str, dict]:
    clauses, params = [], {"class_id": class_id, "fetch": page.fetch}
    if class_id is not None:
        clauses.append(f"{prefix}.class_id = %(class_id)s")
    if page.after is not None:
        clauses.append(f"({prefix}.class_id, {second}) > (%(after_class)s, %(after_second)s)")
        params.update(after_class=page.after[0], after_second=page.after[1])
    return "".join(f" AND {c}" for c in clauses), params


def student_submissions(conn: psycopg.Connection, organization_id: int, assessment_id: Any, page: paging.Page,
                        class_id: int | None = None) -> tuple[dict, str]:
    """The current marks or grades per student (of one class with `class_id`), and the page's ETag."""
    assessment = _assessment(conn, organization_id, assessment_id, "student", class_id)
    field = "grades" if assessment["evaluation"] == "Grade" else "marks"
    where, params = _filters(class_id, page, "m", "m.student_id")
    rows = conn.execute(
        f"""SELECT m.class_id, m.student_id, bool_or(m.is_present) AS is_present,
                   coalesce(jsonb_object_agg(i.key, m.{'grade' if field == 'grades' else 'marks'})
                            FILTER (WHERE m.is_present), '{{}}') AS values,
                   (array_agg(s.submission_id ORDER BY m.received_at DESC, m.id DESC))[1] AS submission_id,
                   max(m.received_at) AS received_at
              FROM student_marks m
              JOIN assessment_items i ON i.id = m.item_id
              JOIN assessment_submissions s ON s.id = m.submission_pk
             WHERE m.assessment_id = %(assessment)s AND m.superseded_at IS NULL{where}
             GROUP BY m.class_id, m.student_id
             ORDER BY m.class_id, m.student_id LIMIT %(fetch)s""",
        {**params, "assessment": assessment["id"]}).fetchall()
    body = page.answer(rows, key=lambda r: (r["class_id"], r["student_id"]), shape=lambda r: {
        "student_id": r["student_id"], "class_id": r["class_id"], "is_present": r["is_present"],
        field: r["values"], "submission_id": str(r["submission_id"]), "received_at": r["received_at"]})
    return body, etag_of(body)


def class_submissions(conn: psycopg.Connection, organization_id: int, assessment_id: Any, page: paging.Page,
                      class_id: int | None = None) -> tuple[dict, str]:
    """The current students present and cleared per class and item, and the page's ETag."""
    assessment = _assessment(conn, organization_id, assessment_id, "class", class_id)
    where, params = _filters(class_id, page, "r", "i.position")
    rows = conn.execute(
        f"""SELECT r.class_id, i.position, i.key, r.students_present, r.students_cleared, s.submission_id,
                   r.received_at
              FROM class_results r
              JOIN assessment_items i ON i.id = r.item_id
              JOIN assessment_submissions s ON s.id = r.submission_pk
             WHERE r.assessment_id = %(assessment)s AND r.superseded_at IS NULL{where}
             ORDER BY r.class_id, i.position LIMIT %(fetch)s""",
        {**params, "assessment": assessment["id"]}).fetchall()
    body = page.answer(rows, key=lambda r: (r["class_id"], r["position"]), shape=lambda r: {
        "class_id": r["class_id"], "item": r["key"], "present": r["students_present"],
        "cleared": r["students_cleared"], "submission_id": str(r["submission_id"]), "received_at": r["received_at"]})
    return body, etag_of(body)

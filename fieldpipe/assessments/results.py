"""Results per student: total marks, percentage, grade from the assessment's scale, passed, and per-item marks,
for student-level assessments (from the teacher's marks or grades) and exams (from the graded answers).

Results are as of an instant (default now): only marks and answers received before it count, a mark counts
unless it was superseded before it, and of an exam's answers the latest per question received before it counts.
This is the rule the daily summaries follow at the end of their data interval, so results as of a past
instant, computed again later (a backfill), are the same; a corrected answer key is the one deliberate
exception: it regrades the affected answers, and the results change with it.

Who is listed: every student enrolled in one of the assessment's classes before the instant whose enrollment
had not ended before the assessment was created (so a student who left mid-term keeps their result), and
every student with marks or answers in such a class received before it; one row per (class, student), in
class then student id order. A student with no marks is `not_assessed` (an exam:
`absent`, nothing answered); one absent on every item is `absent`; anyone else `assessed`.

Scoring:
- Marks: total = the marks of the items the student was present for; percentage = total / the sum of every
  item's maximum; grade = the best grade of the scale whose min_percent the percentage reaches; passed =
  percentage >= the pass criterion's min_percent. Absent: no total, not passed.
- Grade: no marks, so no total or percentage; the overall grade is the grade at the mean rank of the items'
  grades (rank 1 best; a half rounds towards the better grade); passed = that grade meets min_grade.
- Exams (Question/Marks): per question the graded marks of the latest answer (null until graded; a question
  not answered counts 0 of its maximum).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any, Iterator

import psycopg

from fieldpipe import paging
from fieldpipe.assessments.definitions import get_assessment_row, get_items
from fieldpipe.domains import parse_row_id, timestamp_problem
from fieldpipe.problems import FieldError, invalid

RESULTS = paging.Keyset("assessment-results", int, int)  # (class id, student id)
STATUSES = ("assessed", "absent", "not_assessed")
PAGE = 1000


def parse_as_of(value: str | None) -> dt.datetime | None:
    """The `as_of` query parameter: an ISO 8601 timestamp with an offset, or None for now."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or timestamp_problem(parsed):
        raise invalid([FieldError("as_of", "timestamp", "must be an ISO 8601 timestamp with an offset")])
    return parsed


def parse_class_id(value: str | None) -> int | None:
    if value is None:
        return None
    class_id = parse_row_id(value)
    if class_id is None:
        raise invalid([FieldError("class_id", "type", "must be a class id")])
    return class_id


def _now(conn: psycopg.Connection) -> dt.datetime:
    return conn.execute("SELECT now() AS t").fetchone()["t"]


def _plain(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


class Scorer:
    """What scoring one student's rows needs from the assessment: its items, scale and criterion."""

    def __init__(self, assessment: dict, items: list[dict]) -> None:
        self.assessment = assessment
        self.items = items
        self.exam = assessment["submission_level"] == "exam"
        self.by_grade = assessment["evaluation"] == "Grade"
        self.scale = assessment["grade_scale"]
        self.rank = {step["grade"]: n for n, step in enumerate(self.scale, 1)}
        criterion = assessment["pass_criterion"]
        self.min_percent = criterion.get("min_percent")
        self.pass_rank = self.rank.get(criterion.get("min_grade"))
        self.max_total = sum(i["max_marks"] for i in items)

    def grade_for(self, percent: decimal.Decimal) -> str | None:
        return next((s["grade"] for s in self.scale
                     if s.get("min_percent") is not None and percent >= decimal.Decimal(str(s["min_percent"]))), None)

    def score(self, student: dict, rows: dict[int, dict]) -> dict:
        """One student's result from their rows by item id: {is_present, marks, grade}."""
        marks = {i["key"]: _plain(rows[i["id"]]["marks"]) if i["id"] in rows else None for i in self.items}
        grades = {i["key"]: rows[i["id"]]["grade"] if i["id"] in rows else None for i in self.items}
        present = [r for r in rows.values() if r["is_present"]]
        if not rows:
            status = "absent" if self.exam else "not_assessed"
        else:
            status = "assessed" if present else "absent"
        total = percentage = grade = passed = None
        if status == "assessed":
            if self.by_grade:
                ranks = [self.rank[r["grade"]] for r in present if r["grade"] in self.rank]
                if ranks:
                    rank = math.ceil(sum(ranks) / len(ranks) - 0.5)
                    grade = self.scale[rank - 1]["grade"]
                    passed = self.pass_rank is None or rank <= self.pass_rank
            else:
                total = sum((r["marks"] for r in present if r["marks"] is not None), decimal.Decimal(0))
                exact = total * 100 / self.max_total
                percentage = round(exact, 2)
                grade = self.grade_for(exact)
                passed = exact >= decimal.Decimal(str(self.min_percent))
        elif status == "absent":
            passed = False
        return {"student_id": student["student_id"], "class_id": student["class_id"],
                "roll_number": student["roll_number"], "name": student["name"], "status": status,
                "marks": marks, "grades": grades, "total_marks": _plain(total),
                "max_marks": None if self.by_grade else _plain(self.max_total),
                "percentage": _plain(percentage), "grade": grade, "passed": passed}


def _roster(conn: psycopg.Connection, assessment: dict, as_of: dt.datetime, *, class_id: int | None = None,
            student_ids: list[int] | None = None, after: tuple | None = None, fetch: int | None = None) -> list[dict]:
    """(class, student) pairs listed as of the instant: enrolled in one of the assessment's classes before it
    (and not gone before the assessment began), or with marks or answers in such a class received before it
    (a roster imported after the marks, as the demo's, still lists the students marked)."""
    clauses = []
    params: dict[str, Any] = {"assessment": assessment["id"], "as_of": as_of, "since": assessment["created_at"],
                              "class_id": class_id, "students": student_ids, "fetch": fetch}
    if class_id is not None:
        clauses.append("r.class_id = %(class_id)s")
    if student_ids is not None:
        clauses.append("r.student_id = ANY(%(students)s)")
    if after is not None:
        clauses.append("(r.class_id, r.student_id) > (%(after_class)s, %(after_student)s)")
        params.update(after_class=after[0], after_student=after[1])
    marked = ("SELECT class_id, student_id FROM exam_answers" if assessment["submission_level"] == "exam"
              else "SELECT class_id, student_id FROM student_marks")
    return conn.execute(
        f"""SELECT DISTINCT r.class_id, r.student_id, st.roll_number, st.name
              FROM (SELECT e.class_id, e.student_id FROM enrollments e JOIN students st ON st.id = e.student_id
                     WHERE e.created_at < %(as_of)s
                       AND (e.ended_on IS NULL OR e.ended_on >= (%(since)s AT TIME ZONE 'UTC')::date)
                       AND (st.deleted_at IS NULL OR st.deleted_at >= %(since)s)
                    UNION
                    {marked} WHERE assessment_id = %(assessment)s AND received_at < %(as_of)s) r
              JOIN students st ON st.id = r.student_id
              JOIN assessment_classes ac ON ac.class_id = r.class_id AND ac.assessment_id = %(assessment)s
             {'WHERE ' + ' AND '.join(clauses) if clauses else ''}
             ORDER BY r.class_id, r.student_id {'LIMIT %(fetch)s' if fetch else ''}""", params).fetchall()


def _rows(conn: psycopg.Connection, assessment: dict, students: list[dict], as_of: dt.datetime) -> dict:
    """{(class id, student id): {item id: row}} of what counted as of the instant, for these students."""
    params = {"assessment": assessment["id"], "students": [s["student_id"] for s in students], "as_of": as_of}
    if assessment["submission_level"] == "exam":
        rows = conn.execute(
            """SELECT DISTINCT ON (student_id, item_id) student_id, class_id, item_id, true AS is_present,
                      marks, NULL AS grade
                 FROM exam_answers
                WHERE assessment_id = %(assessment)s AND student_id = ANY(%(students)s) AND received_at < %(as_of)s
                ORDER BY student_id, item_id, received_at DESC, id DESC""", params).fetchall()
    else:
        rows = conn.execute(
            """SELECT m.student_id, m.class_id, m.item_id, m.is_present, m.marks, m.grade
                 FROM student_marks m
                WHERE m.assessment_id = %(assessment)s AND m.student_id = ANY(%(students)s)
                  AND m.received_at < %(as_of)s AND (m.superseded_at IS NULL OR m.superseded_at >= %(as_of)s)""",
            params).fetchall()
    by_student: dict[tuple[int, int], dict[int, dict]] = {}
    for row in rows:
        by_student.setdefault((row["class_id"], row["student_id"]), {})[row["item_id"]] = row
    return by_student


def _scored(conn: psycopg.Connection, assessment: dict, students: list[dict], as_of: dt.datetime,
            scorer: Scorer) -> list[dict]:
    rows = _rows(conn, assessment, students, as_of)
    return [scorer.score(s, rows.get((s["class_id"], s["student_id"]), {})) for s in students]


def list_results(conn: psycopg.Connection, organization_id: int, assessment_id: Any, page: paging.Page,
                 class_id: int | None = None, as_of: dt.datetime | None = None) -> dict:
    """A page of the assessment's results (one class's with `class_id`), as of `as_of` (default now)."""
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    if class_id is not None and conn.execute(
            "SELECT 1 FROM assessment_classes WHERE assessment_id = %s AND class_id = %s",
            (assessment["id"], class_id)).fetchone() is None:
        raise invalid([FieldError("class_id", "not_assigned", f"the assessment does not apply to class {class_id}")])
    as_of = as_of or _now(conn)
    students = _roster(conn, assessment, as_of, class_id=class_id, after=page.after, fetch=page.fetch)
    scorer = Scorer(assessment, get_items(conn, assessment["id"]))
    scored = _scored(conn, assessment, students[:page.limit], as_of, scorer) + students[page.limit:]
    return page.answer(scored, key=lambda r: (r["class_id"], r["student_id"]))


def student_results(conn: psycopg.Connection, organization_id: int, assessment_id: Any, student_ids: list[int],
                    as_of: dt.datetime | None = None) -> list[dict]:
    """The results of these students (of every class of the assessment they were in), as of `as_of`
    (default now); what an announcement of results quotes. Students the assessment does not list are left out."""
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    as_of = as_of or _now(conn)
    students = _roster(conn, assessment, as_of, student_ids=list(student_ids))
    return _scored(conn, assessment, students, as_of, Scorer(assessment, get_items(conn, assessment["id"])))


def all_results(conn: psycopg.Connection, assessment: dict, as_of: dt.datetime) -> tuple[list[dict], Iterator[dict]]:
    """Every result of an assessment as of the instant, read a page at a time: (items, results)."""
    items = get_items(conn, assessment["id"])
    scorer = Scorer(assessment, items)

    def results() -> Iterator[dict]:
        after = None
        while True:
            students = _roster(conn, assessment, as_of, after=after, fetch=PAGE)
            yield from _scored(conn, assessment, students, as_of, scorer)
            if len(students) < PAGE:
                return
            after = (students[-1]["class_id"], students[-1]["student_id"])

    return items, results()

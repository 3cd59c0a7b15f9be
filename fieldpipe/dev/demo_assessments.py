"""The demo school (UDISE 02010100101) with class 5A, its students, an LO assessment and a class's marks.

Loaded by `fieldpipe.dev.demo.load_demo` (`make up`); idempotent: the marks go in under a fixed submission id,
so loading again is a duplicate, not a second submission.
"""

from __future__ import annotations

import uuid

import psycopg

from fieldpipe import paging
from fieldpipe.assessments import definitions, roster, submissions
from fieldpipe.problems import Problem

DEMO_UDISE = "02010100101"
DEMO_ASSESSMENT_TITLE = "Mathematics learning outcomes, grade 5 (demo)"
DEMO_SUBMISSION_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "fieldpipe-demo/assessments/5A/marks"))
STUDENTS = [("1", "Asha Thakur"), ("2", "Ravi Negi"), ("3", "Meena Verma"), ("4", "Sunil Chauhan"),
            ("5", "Pooja Sharma"), ("6", "Kiran Rana")]
# Marks per student (roll number) for LO1..LO3; None = absent on the day.
MARKS = {"1": (9, 4, 5), "2": (6, 2, 3), "3": (3, 1, 4), "4": (10, 5, 5), "5": None, "6": (5, 3, 1)}


def _exists(create) -> None:
    try:
        create()
    except Problem as problem:
        if problem.slug != "already-exists":
            raise


def load_demo_assessments(conn: psycopg.Connection, organization_id: int) -> int:
    """Create the demo school, class, students and assessment unless present; return the assessment id."""
    _exists(lambda: roster.create_school(conn, organization_id, {"udise": DEMO_UDISE, "name": "GSSS Demo, Mashobra",
                                                       "district": "Shimla", "block": "Mashobra"}))
    _exists(lambda: roster.create_class(conn, organization_id, DEMO_UDISE, {"grade": 5, "section": "A"}))
    classes = roster.list_classes(conn, organization_id, DEMO_UDISE, paging.Page(roster.CLASSES, paging.MAX_LIMIT))
    class_id = next(c["id"] for c in classes["items"] if (c["grade"], c["section"]) == (5, "A"))
    imported = roster.import_students(conn, organization_id, class_id, [{"roll_number": r, "name": n} for r, n in STUDENTS])
    student_ids = {s["roll_number"]: s["id"] for s in imported["students"]}
    row = conn.execute("SELECT id FROM assessments WHERE organization_id = %s AND title = %s",
                       (organization_id, DEMO_ASSESSMENT_TITLE)).fetchone()
    if row is None:
        assessment_id = definitions.create_assessment(conn, organization_id, {
            "title": DEMO_ASSESSMENT_TITLE, "type": "LO", "evaluation": "Marks", "outcome": "TSP",
            "items": [{"key": "LO1", "label": "Adds and subtracts 3-digit numbers", "max_marks": 10},
                      {"key": "LO2", "label": "Reads time on a clock", "max_marks": 5},
                      {"key": "LO3", "label": "Identifies fractions", "max_marks": 5}],
            "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 60},
                            {"grade": "C", "min_percent": 40}, {"grade": "D", "min_percent": 0}],
            "pass_criterion": {"min_percent": 40}, "class_ids": [class_id],
            "sheet": {"spreadsheet_id": "demo-assessments"}})["id"]
    else:
        assessment_id = row["id"]
    entries = [{"student_id": student_ids[roll], "is_present": marks is not None,
                **({"marks": dict(zip(("LO1", "LO2", "LO3"), marks))} if marks else {})}
               for roll, marks in MARKS.items()]
    submissions.submit_student_marks(conn, organization_id, assessment_id, {
        "submission_id": DEMO_SUBMISSION_ID, "class_id": class_id, "submitted_at": "2026-11-02T11:00:00+05:30",
        "collector": {"id": "demo-teacher"}, "entries": entries})
    _backdate_demo_marks(conn)
    return assessment_id


def _backdate_demo_marks(conn: psycopg.Connection) -> None:
    """The demo marks count as received when the teacher submitted them (2 November), so the daily runs that
    `make up` catches up on already include them: a summary needs no waiting for tomorrow's interval."""
    conn.execute(
        """WITH demo AS (
               UPDATE assessment_submissions SET received_at = submitted_at
                WHERE submission_id = %s AND received_at > submitted_at RETURNING id, submitted_at)
           UPDATE student_marks m SET received_at = demo.submitted_at FROM demo WHERE m.submission_pk = demo.id""",
        (DEMO_SUBMISSION_ID,),
    )

"""The demo school's exam (issue 25): a five-question maths quiz for class 5A that students sit themselves.

Loaded by `fieldpipe.dev.demo.load_demo`; idempotent. Two classmates' answers are already in (a teacher's
tablet batch under a fixed submission id); `make up` issues a fresh PIN slip for roll number 1 each time it
starts (`demo_student_slip`) and prints it, so the demo student can sign in, answer and be graded on close.
A closed demo exam stays closed; the next `make up` adds a fresh one to sit.
"""

from __future__ import annotations

import html
import uuid

import psycopg

from fieldpipe.assessments import definitions, signin, submissions
from fieldpipe.dev.demo_assessments import DEMO_UDISE

DEMO_EXAM_TITLE = "Grade 5 maths quiz (demo)"
DEMO_ROLL_NUMBER = "1"
QUESTIONS = [
    {"key": "Q1", "label": "1/2 + 1/4 = ?", "max_marks": 2, "choices": ["3/4", "2/6", "1/8"], "answer_key": "3/4"},
    {"key": "Q2", "label": "Which is larger: 2/3 or 3/5?", "max_marks": 2, "choices": ["2/3", "3/5"], "answer_key": "2/3"},
    {"key": "Q3", "label": "How many minutes in 1½ hours?", "max_marks": 2, "choices": ["60", "90", "150"],
     "answer_key": "90"},
    {"key": "Q4", "label": "408 − 199 = ?", "max_marks": 2, "choices": ["209", "219", "309"], "answer_key": "209"},
    {"key": "Q5", "label": "A square has sides of 3 cm. Its perimeter?", "max_marks": 2,
     "choices": ["9 cm", "12 cm", "6 cm"], "answer_key": "12 cm"},
]
# Classmates (roll numbers 2 and 3) who answered on the class tablet.
CLASSMATES = {"2": {"Q1": "3/4", "Q2": "2/3", "Q3": "60", "Q4": "209", "Q5": "12 cm"},
              "3": {"Q1": "2/6", "Q2": "2/3", "Q3": "90", "Q4": "309", "Q5": "9 cm"}}


def _demo_class(conn: psycopg.Connection, organization_id: int) -> int:
    return conn.execute(
        """SELECT c.id FROM classes c JOIN schools s ON s.id = c.school_id
            WHERE s.organization_id = %s AND s.udise = %s AND c.grade = 5 AND c.section = 'A'""",
        (organization_id, DEMO_UDISE)).fetchone()["id"]


def load_demo_exam(conn: psycopg.Connection, organization_id: int) -> int:
    """The open demo exam (created unless one is open), with the classmates' answers; returns its id."""
    class_id = _demo_class(conn, organization_id)
    row = conn.execute(
        """SELECT id FROM assessments WHERE organization_id = %s AND title = %s AND closed_at IS NULL
            ORDER BY id LIMIT 1""", (organization_id, DEMO_EXAM_TITLE)).fetchone()
    exam_id = row["id"] if row else definitions.create_assessment(conn, organization_id, {
        "title": DEMO_EXAM_TITLE, "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
        "items": QUESTIONS, "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 60},
                                            {"grade": "C", "min_percent": 40}, {"grade": "D", "min_percent": 0}],
        "pass_criterion": {"min_percent": 40}, "class_ids": [class_id],
        "sheet": {"spreadsheet_id": "demo-exam"}})["id"]
    students = {r["roll_number"]: r["id"] for r in conn.execute(
        "SELECT id, roll_number FROM students WHERE class_id = %s", (class_id,))}
    submissions.submit_exam_answers(conn, organization_id, exam_id, {
        "submission_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fieldpipe-demo/exams/{exam_id}/tablet")),
        "class_id": class_id, "submitted_at": "2026-11-29T10:00:00+05:30", "collector": {"id": "class-5a-tablet"},
        "answers": [{"student_id": students[roll], "question": q, "answer": a}
                    for roll, answers in CLASSMATES.items() for q, a in answers.items()]})
    return exam_id


def demo_student_slip(conn: psycopg.Connection, organization_id: int) -> dict:
    """A fresh slip for the demo student (roll number 1 of class 5A): {class_id, roll_number, name, pin,
    signin_code, qr_payload, qr_svg}."""
    class_id = _demo_class(conn, organization_id)
    student = conn.execute("SELECT id FROM students WHERE class_id = %s AND roll_number = %s",
                           (class_id, DEMO_ROLL_NUMBER)).fetchone()
    slip = signin.issue_pins(conn, organization_id, class_id, {"student_ids": [student["id"]]})["slips"][0]
    return {"class_id": class_id, **slip}


def slip_page(slip: dict) -> str:
    """The slip as a printable HTML page: class id, roll number, name, PIN and the one-time QR code."""
    return (f"<!doctype html><meta charset=utf-8><title>Exam sign-in slip</title>"
            f"<h1>Exam sign-in</h1><p>{html.escape(slip['name'])}: class id {slip['class_id']}, "
            f"roll number {html.escape(slip['roll_number'])}, PIN <b>{slip['pin']}</b></p>"
            f"<p>Or scan once:</p><img alt='sign-in QR code' width=200 src=\"{slip['qr_svg']}\">\n")

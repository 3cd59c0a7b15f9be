"""Every pass-mark comparison at its boundary: marks equal to the pass mark pass, whichever way they arrive
(student marks, graded exam answers, a grade equal to the minimum grade), and a hair below fails."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from fieldpipe.assessments import aggregate, definitions, submissions
from tests.test_assessments_aggregation import DAY, _batch, _now, _post_marks, district  # noqa: F401 (fixture)


def _class_row(conn, assessment_id):
    return conn.execute("""SELECT students_assessed, students_present, students_passing FROM assessment_summaries
                            WHERE assessment_id = %s AND level = 'class' ORDER BY entity""", (assessment_id,)).fetchall()


def _summarize(conn) -> dt.datetime:
    end = _now(conn) + DAY
    aggregate.grade_exam_answers(conn, end)
    aggregate.summarize_interval(conn, end - DAY, end)
    return end


def test_student_marks_at_the_pass_mark_pass_and_just_below_fail(conn, district):
    c1 = district["classes"][0]
    a = district["students"]["a"]
    _post_marks(conn, district, c1, {a[0]: 4, a[1]: 3.99, a[2]: 4.01})   # pass mark 40% of 10 = 4
    _summarize(conn)
    assert _class_row(conn, district["assessment"]) == [
        {"students_assessed": 3, "students_present": 3, "students_passing": 2}]


def test_an_exam_answer_worth_exactly_the_pass_mark_passes(conn, district):
    c1 = district["classes"][0]
    a = district["students"]["a"]
    exam = definitions.create_assessment(conn, district["org"], {
        "title": "Exam", "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
        "items": [{"key": "q1", "max_marks": 2, "choices": ["a", "b"], "answer_key": "b"}],
        "pass_criterion": {"min_percent": 100}, "class_ids": [c1]})
    assert exam["items"][0]["pass_marks"] == 2
    for student, choice in ((a[0], "b"), (a[1], "a")):
        submissions.submit_exam_answers(conn, district["org"], exam["id"], _batch(
            c1, "answers", [{"student_id": student, "question": "q1", "answer": choice}]))
    _summarize(conn)
    assert _class_row(conn, exam["id"]) == [{"students_assessed": 2, "students_present": 2, "students_passing": 1}]


def test_a_grade_equal_to_the_minimum_grade_passes(conn, district):
    c1 = district["classes"][0]
    a = district["students"]["a"]
    graded = definitions.create_assessment(conn, district["org"], {
        "title": "Grades", "type": "LO", "evaluation": "Grade", "outcome": "TSP",
        "items": [{"key": "LO1", "max_marks": 10}],
        "grade_scale": [{"grade": "A"}, {"grade": "B"}, {"grade": "C"}],
        "pass_criterion": {"min_grade": "B"}, "class_ids": [c1]})
    entries = [{"student_id": s, "is_present": True, "grades": {"LO1": g}} for s, g in zip(a, "ABC")]
    submissions.submit_student_marks(conn, district["org"], graded["id"], _batch(c1, "entries", entries))
    _summarize(conn)
    assert _class_row(conn, graded["id"]) == [{"students_assessed": 3, "students_present": 3, "students_passing": 2}]


def test_marks_at_a_grade_boundary_get_that_grade(conn, district):
    c1 = district["classes"][0]
    a = district["students"]["a"]
    _post_marks(conn, district, c1, {a[0]: 8, a[1]: 7.99, a[2]: 5})   # A from 80%, B from 50%
    _summarize(conn)
    row = conn.execute("SELECT grade_distribution, mean_marks FROM assessment_summaries "
                       "WHERE assessment_id = %s AND level = 'class'", (district["assessment"],)).fetchone()
    assert row["grade_distribution"] == {"A": 1, "B": 2}
    assert row["mean_marks"] == Decimal("7.00")

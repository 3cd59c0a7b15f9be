"""Exams: students post their own answers (one per request, as a phone sends them), an admin closes the exam,
and closing grades it at once.

Closing and answering exclude each other through an advisory lock on the exam, which closing takes
exclusively. A student's answer is one INSERT, committed on its own: its condition `exam_accepts_answers(exam)`
(migration 0023) takes the lock shared and reads the exam's state after the lock is granted; a teacher's batch
takes it shared in a statement of its own before reading the exam. So an answer either committed before the
close (and is graded by it) or sees the exam closed and is refused; none slips in ungraded.

Closing grades in the closing request's transaction, set-based (`grade_exam_answers.sql`, the same statement
the daily `aggregate_assessments` run uses, limited to this exam): the results are readable when the close
answers. It also marks the results changed (`results_changed_at`), which the `export_results` DAG (every
minute) picks up to write the exam's `Results` tab. Correcting an answer key (PATCH `answer_keys`) regrades
exactly the answers graded against the old key, in the same way.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import psycopg
from psycopg.rows import scalar_row

from fieldpipe import paging
from fieldpipe.assessments.aggregate import grade_exam_answers
from fieldpipe.assessments.definitions import assessment_body, get_assessment_row, get_items
from fieldpipe.assessments.signin import Student
from fieldpipe.domains import parse_row_id
from fieldpipe.problems import FieldError, Problem, invalid, not_found

OPEN_EXAMS = paging.Keyset("student-exams", int)
NO_LIMIT = dt.datetime(9999, 1, 1, tzinfo=dt.timezone.utc)
LOCK = "SELECT pg_advisory_xact_lock{mode}(hashtextextended('exam:' || %s, 0))"
ANSWER_KEYS = ("answer_id", "question", "answer")


def lock_exam(conn: psycopg.Connection, assessment_id: int, shared: bool) -> None:
    conn.execute(LOCK.format(mode="_shared" if shared else ""), (assessment_id,))


def grade(conn: psycopg.Connection, exam_id: int) -> int:
    """Grade every answer of the exam not yet graded against its question's current key, now."""
    return grade_exam_answers(conn, NO_LIMIT, exam_id)


def close_exam(conn: psycopg.Connection, organization_id: int, assessment_id: Any) -> dict:
    """Close an exam to new answers and grade it now. Closing a closed exam changes nothing."""
    row_id = parse_row_id(assessment_id)
    if row_id is None:
        raise not_found(f"assessment {assessment_id!r}")
    lock_exam(conn, row_id, shared=False)
    exam = get_assessment_row(conn, organization_id, row_id, lock=True)
    if exam["submission_level"] != "exam":
        raise invalid([FieldError("", "not_an_exam", f"assessment {exam['id']} is {exam['submission_level']}-level; "
                                                     "only exams close")])
    if exam["closed_at"] is None:
        exam = conn.execute(
            """UPDATE assessments SET closed_at = now(), results_changed_at = now(), updated_at = now()
                WHERE id = %s RETURNING closed_at""", (exam["id"],)).fetchone() | {"id": exam["id"]}
    graded = grade(conn, exam["id"])
    answered = conn.execute("SELECT count(DISTINCT student_id) AS n FROM exam_answers WHERE assessment_id = %s",
                            (exam["id"],)).fetchone()["n"]
    return {"id": exam["id"], "closed_at": exam["closed_at"], "answers_graded": graded, "students_answered": answered,
            "results": f"/api/v1/assessments/{exam['id']}/results"}


def correct_answer_keys(conn: psycopg.Connection, exam: dict, answer_keys: Any, errors: list[FieldError]) -> bool:
    """Check `answer_keys` ({question: choice}) of a PATCH; True when they were applied (the caller regrades)."""
    if exam["submission_level"] != "exam":
        errors.append(FieldError("answer_keys", "not_an_exam", "only exam questions have answer keys"))
        return False
    questions = {i["key"]: i for i in get_items(conn, exam["id"])}
    if not isinstance(answer_keys, dict) or not answer_keys:
        errors.append(FieldError("answer_keys", "type", "must be an object of question key to the correct choice"))
        return False
    before = len(errors)
    for key, choice in answer_keys.items():
        if key not in questions:
            errors.append(FieldError(f"answer_keys.{key}", "unknown_question", "is not a question of this exam"))
        elif choice not in questions[key]["choices"]:
            errors.append(FieldError(f"answer_keys.{key}", "choice",
                                     f"must be one of {', '.join(questions[key]['choices'])}"))
    if len(errors) > before:
        return False
    conn.execute(
        """UPDATE assessment_items i SET answer_key = t.answer_key
             FROM jsonb_each_text(%s) AS t(key, answer_key)
            WHERE i.assessment_id = %s AND i.key = t.key""", (psycopg.types.json.Jsonb(answer_keys), exam["id"]))
    return True


def regrade(conn: psycopg.Connection, exam_id: int) -> int:
    """After a key correction: grade again exactly the answers graded against another key (and any not yet
    graded), and mark a closed exam's results changed for its Results tab."""
    graded = grade(conn, exam_id)
    conn.execute("UPDATE assessments SET results_changed_at = now() WHERE id = %s AND closed_at IS NOT NULL",
                 (exam_id,))
    return graded


# --- the student's side --------------------------------------------------------------------------------------------

def _own(student: Student, student_id: Any) -> None:
    if parse_row_id(student_id) != student.student_id:
        raise Problem("forbidden", "a student token reaches only its own student's exams and answers")


def _check_answer(payload: Any) -> tuple[uuid.UUID, str, str]:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object {answer_id, question, answer}")])
    errors = [FieldError(k, "unknown_member", "send answer_id, question and answer only")
              for k in payload if k not in ANSWER_KEYS]
    answer_id = None
    try:
        answer_id = uuid.UUID(payload.get("answer_id")) if isinstance(payload.get("answer_id"), str) else None
    except ValueError:
        pass
    if answer_id is None:
        errors.append(FieldError("answer_id", "format", "must be a UUID made on the device for this answer"))
    for name in ("question", "answer"):
        if not isinstance(payload.get(name), str) or not payload[name]:
            errors.append(FieldError(name, "required", "must be a non-empty string"))
    if errors:
        raise invalid(errors)
    return answer_id, payload["question"], payload["answer"]


INSERT_ANSWER = """
INSERT INTO exam_answers (assessment_id, class_id, student_id, item_id, answer, answer_id)
SELECT i.assessment_id, ac.class_id, %(student)s, i.id, %(answer)s, %(answer_id)s
  FROM assessment_items i
  JOIN assessments a ON a.id = i.assessment_id
  JOIN assessment_classes ac ON ac.assessment_id = a.id AND ac.class_id = %(class)s
 WHERE i.assessment_id = %(exam)s AND i.key = %(question)s AND %(answer)s = ANY(i.choices)
   AND a.organization_id = %(org)s AND exam_accepts_answers(a.id)
ON CONFLICT (assessment_id, student_id, answer_id) WHERE answer_id IS NOT NULL DO NOTHING
RETURNING received_at"""


def _receipt(exam_id: int, answer_id: uuid.UUID, question: str, answer: str, received_at: dt.datetime) -> dict:
    return {"answer_id": str(answer_id), "assessment_id": exam_id, "question": question, "answer": answer,
            "received_at": received_at}


def post_answer(conn: psycopg.Connection, student: Student, student_id: Any, exam_id: Any,
                payload: Any) -> tuple[dict, bool]:
    """Store one answer of the token's student: (receipt, created). A retry with the same answer_id is the
    first receipt. The happy path is one INSERT, which commits on its own (the view runs in autocommit): one
    round trip per answer."""
    _own(student, student_id)
    exam_pk = parse_row_id(exam_id)
    if exam_pk is None:
        raise not_found(f"exam {exam_id!r}")
    try:
        answer_id, question, answer = _check_answer(payload)
    except Problem:
        _student_exam(conn, student, exam_pk)  # an exam that is not theirs is 404 before a bad body is 422
        raise
    params = {"student": student.student_id, "class": student.class_id, "org": student.organization_id,
              "exam": exam_pk, "question": question, "answer": answer, "answer_id": answer_id}
    # the one column as it is: a dict row would name its columns again for every answer
    received_at = conn.cursor(row_factory=scalar_row).execute(INSERT_ANSWER, params).fetchone()
    if received_at is not None:
        return _receipt(exam_pk, answer_id, question, answer, received_at), True
    return _refusal(conn, student, exam_pk, answer_id, question, answer), False


def _refusal(conn: psycopg.Connection, student: Student, exam_pk: int, answer_id: uuid.UUID, question: str,
             answer: str) -> dict:
    """Why an answer was not inserted: a retry (its first receipt), or the problem to raise."""
    exam = _student_exam(conn, student, exam_pk)
    earlier = conn.execute(
        """SELECT x.answer, x.received_at, i.key FROM exam_answers x JOIN assessment_items i ON i.id = x.item_id
            WHERE x.assessment_id = %s AND x.student_id = %s AND x.answer_id = %s""",
        (exam_pk, student.student_id, answer_id)).fetchone()
    if earlier is not None:
        if (earlier["key"], earlier["answer"]) != (question, answer):
            raise Problem("submission-conflict", f"answer {answer_id} was already received with a different "
                                                 "question or choice; send a changed answer under a new answer_id")
        return _receipt(exam_pk, answer_id, question, answer, earlier["received_at"])
    if exam["closed_at"] is not None or (exam["deadline"] is not None and exam["deadline"] <= exam["now"]):
        raise invalid([FieldError("", "exam_closed", f"exam {exam_pk} is closed to answers")])
    item = next((i for i in get_items(conn, exam_pk) if i["key"] == question), None)
    if item is None:
        raise invalid([FieldError("question", "unknown_question", f"{question!r} is not a question of this exam")])
    raise invalid([FieldError("answer", "choice", f"must be one of {', '.join(item['choices'])}")])


def _student_exam(conn: psycopg.Connection, student: Student, exam_pk: int) -> dict:
    """The exam, when it is one the student's class sits; 404 otherwise (another class's exam is not theirs)."""
    exam = conn.execute(
        """SELECT a.*, now() AS now FROM assessments a
             JOIN assessment_classes ac ON ac.assessment_id = a.id AND ac.class_id = %s
            WHERE a.id = %s AND a.organization_id = %s AND a.submission_level = 'exam'""",
        (student.class_id, exam_pk, student.organization_id)).fetchone()
    if exam is None:
        raise not_found(f"exam {exam_pk}")
    return exam


def _answers(conn: psycopg.Connection, student: Student, exam_ids: list[int]) -> dict[int, dict[str, str]]:
    answers: dict[int, dict[str, str]] = {}
    for row in conn.execute(
            """SELECT DISTINCT ON (x.assessment_id, x.item_id) x.assessment_id, i.key, x.answer
                 FROM exam_answers x JOIN assessment_items i ON i.id = x.item_id
                WHERE x.assessment_id = ANY(%s) AND x.student_id = %s
                ORDER BY x.assessment_id, x.item_id, x.received_at DESC, x.id DESC""",
            (exam_ids, student.student_id)):
        answers.setdefault(row["assessment_id"], {})[row["key"]] = row["answer"]
    return answers


def open_exams(conn: psycopg.Connection, student: Student, student_id: Any, page: paging.Page) -> dict:
    """The exams open now for the student's class, each with its questions (no answer keys) and the
    student's latest answer per question."""
    _own(student, student_id)
    rows = conn.execute(
        """SELECT a.*, sub.code AS subject FROM assessments a
             JOIN assessment_classes ac ON ac.assessment_id = a.id AND ac.class_id = %s
             LEFT JOIN subjects sub ON sub.id = a.subject_id
            WHERE a.organization_id = %s AND a.submission_level = 'exam' AND a.closed_at IS NULL
              AND (a.deadline IS NULL OR a.deadline > now()) AND a.id > %s
            ORDER BY a.id LIMIT %s""",
        (student.class_id, student.organization_id, page.after[0] if page.after else 0, page.fetch)).fetchall()
    answers = _answers(conn, student, [r["id"] for r in rows])

    def shape(row: dict) -> dict:
        body = assessment_body(row, get_items(conn, row["id"]), [student.class_id], with_answer_keys=False)
        return {**body, "answers": answers.get(row["id"], {})}

    return page.answer(rows, key=lambda r: (r["id"],), shape=shape)


def own_answers(conn: psycopg.Connection, student: Student, student_id: Any, exam_id: Any) -> dict:
    """The student's latest answer per question of one exam of their class (open or closed)."""
    _own(student, student_id)
    exam_pk = parse_row_id(exam_id)
    if exam_pk is None:
        raise not_found(f"exam {exam_id!r}")
    exam = _student_exam(conn, student, exam_pk)
    return {"assessment_id": exam_pk, "student_id": student.student_id, "closed": exam["closed_at"] is not None,
            "answers": _answers(conn, student, [exam_pk]).get(exam_pk, {})}

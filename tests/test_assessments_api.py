"""Assessments API: rosters, the supported combinations, per-entry validation, idempotent submissions, ETag."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest

from tests.helpers import auth

UDISE = "02010100101"


@pytest.fixture
def school(client, admin_key):
    """A school with classes 5A and 5B, three students in 5A and one in 5B; returns ids."""
    h = auth(admin_key)
    assert client.post("/api/v1/schools", json={"udise": UDISE, "name": "GPS Demo", "district": "Shimla",
                                                 "block": "Mashobra"}, headers=h).status_code == 201
    class_a = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 5, "section": "A"}, headers=h).get_json()
    class_b = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 5, "section": "B"}, headers=h).get_json()
    imported = client.post(f"/api/v1/classes/{class_a['id']}/students", headers=h, json={"students": [
        {"roll_number": "1", "name": "Asha", "parent_phone": "+919876543210"},
        {"roll_number": "2", "name": "Ravi"}, {"roll_number": "3", "name": "Meena"}]}).get_json()
    other = client.post(f"/api/v1/classes/{class_b['id']}/students", headers=h,
                        json={"students": [{"roll_number": "1", "name": "Kiran"}]}).get_json()
    return {"class_a": class_a["id"], "class_b": class_b["id"],
            "students": [s["id"] for s in imported["students"]], "other_student": other["students"][0]["id"]}


def lo_assessment(class_ids, **overrides) -> dict:
    body = {"title": "LO check, maths, grade 5", "type": "LO", "evaluation": "Marks", "outcome": "TSP",
            "items": [{"key": "LO1", "label": "Adds 2-digit numbers", "max_marks": 10},
                      {"key": "LO2", "label": "Reads a clock", "max_marks": 5}],
            "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 50},
                            {"grade": "C", "min_percent": 0}],
            "pass_criterion": {"min_percent": 40}, "class_ids": class_ids, "deadline": "2099-01-01T00:00:00+05:30"}
    body.update(overrides)
    return body


@pytest.fixture
def assessment(client, admin_key, school):
    resp = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"], school["class_b"]]),
                       headers=auth(admin_key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def marks_batch(class_id, entries, submission_id=None) -> dict:
    return {"submission_id": submission_id or str(uuid.uuid4()), "class_id": class_id,
            "submitted_at": "2026-11-20T10:00:00+05:30", "collector": {"id": "teacher-1"}, "entries": entries}


def test_student_import_json_and_csv_upserts_by_roll_number(client, admin_key, school):
    h = auth(admin_key)
    csv_body = "roll_number,name,parent_phone\n3,Meena Kumari,\n4,Sunil,+919812345678\n"
    resp = client.post(f"/api/v1/classes/{school['class_a']}/students", data=csv_body.encode(),
                       headers={**h, "Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert (body["created"], body["updated"]) == (1, 1)
    assert [s["name"] for s in body["students"]] == ["Meena Kumari", "Sunil"]  # the students this import named
    bad = client.post(f"/api/v1/classes/{school['class_a']}/students", headers=h, json={"students": [
        {"roll_number": "9", "name": "Ok"}, {"roll_number": "", "name": "X"}, {"roll_number": "10", "name": "Y",
                                                                              "parent_phone": "12"}]})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.get_json()["errors"]} == {"students[1].roll_number", "students[2].parent_phone"}
    assert len(client.get(f"/api/v1/classes/{school['class_a']}/students", headers=h).get_json()["items"]) == 4


@pytest.mark.parametrize("evaluation,outcome", [("Percentage", "TSP"), ("None", "TSP"), ("Marks", "Boolean"),
                                                ("Grade", "Marks")])
def test_unsupported_combinations_are_rejected_listing_the_supported_ones(client, admin_key, school, evaluation, outcome):
    resp = client.post("/api/v1/assessments", headers=auth(admin_key),
                       json=lo_assessment([school["class_a"]], evaluation=evaluation, outcome=outcome))
    assert resp.status_code == 422
    body = resp.get_json()
    assert len(body["supported"]) == 8
    assert {"type": "Unit", "evaluation": "Grade", "outcome": "TSP"} in body["supported"]
    assert "Question/Marks/TSP" in body["detail"]


@pytest.mark.parametrize("kind", ["LO", "Unit", "Question", "None"])
def test_grade_and_marks_with_tsp_are_supported_for_every_type(client, admin_key, school, kind):
    marks = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment([school["class_a"]], type=kind))
    grades = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], type=kind, evaluation="Grade", pass_criterion={"min_grade": "B"},
        grade_scale=[{"grade": "A"}, {"grade": "B"}, {"grade": "C"}]))
    assert (marks.status_code, grades.status_code) == (201, 201), (marks.get_json(), grades.get_json())
    assert marks.get_json()["items"][0]["pass_marks"] == 4


def test_student_marks_are_idempotent_per_submission_id(client, collector_key, school, assessment):
    s = school["students"]
    batch = marks_batch(school["class_a"], [
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 9, "LO2": 2}},
        {"student_id": s[1], "is_present": False}])
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    first = client.post(url, json=batch, headers=auth(collector_key))
    again = client.post(url, json=batch, headers=auth(collector_key))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json() == first.get_json()
    changed = {**batch, "entries": [{"student_id": s[0], "is_present": True, "marks": {"LO1": 8}}]}
    conflict = client.post(url, json=changed, headers=auth(collector_key))
    assert conflict.status_code == 409 and conflict.get_json()["code"] == "409.1"


def test_bad_entries_are_each_reported_and_nothing_is_stored(client, admin_key, collector_key, school, assessment, conn):
    s = school["students"]
    client.delete(f"/api/v1/students/{s[2]}", headers=auth(admin_key))
    batch = marks_batch(school["class_a"], [
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 11}},          # above the maximum of 10
        {"student_id": 999999, "is_present": True, "marks": {"LO1": 1}},         # unknown student
        {"student_id": school["other_student"], "is_present": True, "marks": {"LO1": 1}},  # class 5B
        {"student_id": s[2], "is_present": True, "marks": {"LO1": 1}},           # deleted
        {"student_id": s[1], "is_present": True, "marks": {"LO9": 1}},           # not an item
    ])
    resp = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch,
                       headers=auth(collector_key))
    assert resp.status_code == 422
    errors = {e["field"]: e["code"] for e in resp.get_json()["errors"]}
    assert errors == {"entries[0].marks.LO1": "marks_above_max", "entries[1].student_id": "unknown_student",
                      "entries[2].student_id": "other_class", "entries[3].student_id": "deleted_student",
                      "entries[4].marks.LO9": "unknown_item"}
    assert conn.execute("SELECT count(*) AS n FROM student_marks").fetchone()["n"] == 0
    assert conn.execute("SELECT count(*) AS n FROM assessment_submissions").fetchone()["n"] == 0


def test_class_level_results_reject_cleared_above_present(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key),
                          json=lo_assessment([school["class_a"]], level="class")).get_json()
    url = f"/api/v1/assessments/{created['id']}/submissions/class"
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "t"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "results": [{"item": "LO1", "present": 30, "cleared": 31}, {"item": "LO2", "present": 30, "cleared": 12}]}
    bad = client.post(url, json=body, headers=auth(collector_key))
    assert bad.status_code == 422
    assert [(e["field"], e["code"]) for e in bad.get_json()["errors"]] == [("results[0].cleared", "cleared_above_present")]
    body["results"][0]["cleared"] = 25
    assert client.post(url, json=body, headers=auth(collector_key)).status_code == 201
    student_level = client.post(f"/api/v1/assessments/{created['id']}/submissions/student", headers=auth(collector_key),
                                json=marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}]))
    assert student_level.status_code == 422


def test_exam_answers_are_stored_as_they_come_and_unknown_questions_rejected(client, admin_key, collector_key, school, conn):
    exam = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", items=[
            {"key": "q1", "max_marks": 1, "choices": ["a", "b", "c"], "answer_key": "b"},
            {"key": "q2", "max_marks": 2, "choices": ["a", "b"], "answer_key": "a"}])).get_json()
    assert "answer_key" not in client.get(f"/api/v1/assessments/{exam['id']}", headers=auth(collector_key)).get_json()["items"][0]
    s = school["students"]
    url = f"/api/v1/assessments/{exam['id']}/answers"
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "tablet-3"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "answers": [{"student_id": s[0], "question": "q1", "answer": "b"},
                        {"student_id": s[0], "question": "q7", "answer": "a"},
                        {"student_id": s[1], "question": "q2", "answer": "z"}]}
    bad = client.post(url, json=body, headers=auth(collector_key))
    assert [(e["field"], e["code"]) for e in bad.get_json()["errors"]] == [
        ("answers[1].question", "unknown_question"), ("answers[2].answer", "choice")]
    body["answers"] = [body["answers"][0], {"student_id": s[1], "question": "q2", "answer": "b"}]
    assert client.post(url, json=body, headers=auth(collector_key)).status_code == 201
    stored = conn.execute("SELECT answer, marks FROM exam_answers ORDER BY id").fetchall()
    assert stored == [{"answer": "b", "marks": None}, {"answer": "b", "marks": None}]  # graded later, by the DAG


def test_listing_etag_changes_with_assessments_and_submissions_only(client, admin_key, collector_key, school, assessment):
    h = auth(collector_key)
    url = f"/api/v1/assessments?school={UDISE}"
    first = client.get(url, headers=h)
    assert first.status_code == 200
    listed = first.get_json()["items"]
    assert [a["id"] for a in listed] == [assessment["id"]]
    assert [c["submissions"] for c in listed[0]["classes"]] == [0, 0]
    etag = first.headers["ETag"]
    assert client.get(url, headers={**h, "If-None-Match": etag}).status_code == 304

    batch = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": True, "marks": {"LO1": 5}}])
    client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch, headers=h)
    after_submission = client.get(url, headers={**h, "If-None-Match": etag})
    assert after_submission.status_code == 200
    etag2 = after_submission.headers["ETag"]
    assert etag2 != etag

    client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch, headers=h)  # a retry
    assert client.get(url, headers={**h, "If-None-Match": etag2}).status_code == 304

    client.patch(f"/api/v1/assessments/{assessment['id']}", json={"title": "LO check (revised)"}, headers=auth(admin_key))
    assert client.get(url, headers={**h, "If-None-Match": etag2}).status_code == 200

    client.patch(f"/api/v1/assessments/{assessment['id']}", json={"deadline": "2020-01-01T00:00:00Z"}, headers=auth(admin_key))
    assert client.get(url, headers=h).get_json()["items"] == []  # closed assessments are not listed


def test_submissions_after_the_deadline_are_closed(client, admin_key, collector_key, school, assessment):
    client.patch(f"/api/v1/assessments/{assessment['id']}", json={"deadline": "2026-11-01T00:00:00Z"}, headers=auth(admin_key))
    batch = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}])
    resp = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch, headers=auth(collector_key))
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["code"] == "closed"


def _exam_items(**first):
    return [{"key": "q1", "max_marks": 1, "choices": ["a", "b", "c"], "answer_key": "b", **first},
            {"key": "q2", "max_marks": 2, "choices": ["a", "b"], "answer_key": "a"}]


@pytest.mark.parametrize("overrides, error", [
    ({"items": []}, {"field": "items", "code": "required", "message": "must be a non-empty list of items"}),
    ({"pass_criterion": {"min_percent": 150}},
     {"field": "pass_criterion.min_percent", "code": "range", "message": "must be a number from 0 to 100"}),
    ({"level": "exam"}, {"field": "level", "code": "exam", "message": "an exam is a Question assessment evaluated by Marks"}),
    ({"subject": "astrology"}, {"field": "subject", "code": "unknown", "message": "subject 'astrology' does not exist"}),
    ({"type": "Question", "level": "exam", "items": _exam_items(choices=["a", "a"], answer_key="a")},
     {"field": "items[0].choices", "code": "required", "message": "an exam question needs 2 or more distinct options"}),
])
def test_a_refused_assessment_says_which_field_and_why(client, admin_key, school, conn, overrides, error):
    resp = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], **overrides),
                       headers=auth(admin_key))
    assert resp.status_code == 422 and error in resp.get_json()["errors"]
    assert conn.execute("SELECT count(*) AS n FROM assessments").fetchone()["n"] == 0


def test_admins_see_the_answer_key_and_an_edit_of_several_fields_applies_them_all(client, admin_key, school):
    exam = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", items=_exam_items())).get_json()
    url = f"/api/v1/assessments/{exam['id']}"
    assert [i["answer_key"] for i in client.get(url, headers=auth(admin_key)).get_json()["items"]] == ["b", "a"]
    created_at = datetime.fromisoformat(exam["updated_at"])
    edited = client.patch(url, json={"title": "Exam (revised)", "deadline": "2099-02-01T00:00:00Z"},
                          headers=auth(admin_key))
    assert edited.status_code == 200, edited.get_json()
    body = edited.get_json()
    assert body["title"] == "Exam (revised)"
    assert datetime.fromisoformat(body["deadline"]) == datetime(2099, 2, 1, tzinfo=timezone.utc)
    assert datetime.fromisoformat(body["updated_at"]) > created_at


def test_a_submission_receipt_carries_when_it_was_submitted(client, collector_key, school, assessment):
    batch = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}])
    receipt = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch,
                          headers=auth(collector_key)).get_json()
    assert datetime.fromisoformat(receipt["submitted_at"]) == datetime(2026, 11, 20, 4, 30, tzinfo=timezone.utc)
    assert (receipt["entries"], receipt["kind"]) == (1, "student")


def test_bad_mark_entries_say_what_is_expected(client, collector_key, school, assessment):
    s = school["students"]
    batch = marks_batch(school["class_a"], ["Asha: 9", {"student_id": s[0], "marks": {"LO1": 9}},
                                            {"student_id": s[1], "is_present": True, "marks": {"LO1": "nine"}}])
    resp = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch,
                       headers=auth(collector_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [
        {"field": "entries[0]", "code": "type", "message": "must be an object {student_id, is_present, marks}"},
        {"field": "entries[1].is_present", "code": "required", "message": "must be true or false"},
        {"field": "entries[2].marks.LO1", "code": "type", "message": "must be a number of marks, 0 or more"}]


def test_a_class_result_given_twice_for_an_item_is_refused(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key),
                          json=lo_assessment([school["class_a"]], level="class")).get_json()
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "t"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "results": [{"item": "LO1", "present": 30, "cleared": 20}, {"item": "LO1", "present": 30, "cleared": 12}]}
    resp = client.post(f"/api/v1/assessments/{created['id']}/submissions/class", json=body, headers=auth(collector_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [
        {"field": "results[1].item", "code": "duplicate", "message": "the item appears twice in the batch"}]


# Definitions, refusal by refusal: exactly the field, code and message a client shows; nothing stored.
def _grade_scale(*steps):
    return [{"grade": g, "min_percent": p} for g, p in steps]


# Each case changes one thing of a valid definition and is refused with exactly these errors.
REFUSALS = [
    ({"type": "Quiz"}, [("type", "enum", "must be one of LO, Unit, Question, None")]),
    ({"evaluation": "Stars"}, [("evaluation", "enum", "must be one of Grade, Marks, Percentage, None")]),
    ({"outcome": "Pass"}, [("outcome", "enum", "must be one of TSP, Boolean, Marks")]),
    ({"title": "   "}, [("title", "required", "must be a non-empty string")]),
    ({"title": 7}, [("title", "required", "must be a non-empty string")]),
    ({"level": "school"}, [("level", "enum", "must be one of student, class, exam")]),
    ({"items": "LO1"}, [("items", "required", "must be a non-empty list of items")]),
    ({"items": ["LO1"]}, [("items[0]", "type", "must be an object")]),
    ({"items": [{"key": "-x", "max_marks": 1}]},
     [("items[0].key", "pattern", "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]),
    ({"items": [{"key": "a" * 64, "max_marks": 1}]},
     [("items[0].key", "pattern", "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]),
    ({"items": [{"key": "LO1\n", "max_marks": 1}]},  # `$` alone would let a trailing newline through
     [("items[0].key", "pattern", "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]),
    ({"items": [{"key": "LO1", "max_marks": 1}, {"key": "LO1", "max_marks": 2}]},
     [("items[1].key", "duplicate", "key 'LO1' is used twice")]),
    ({"items": [{"key": "LO1", "max_marks": 0}]}, [("items[0].max_marks", "range", "must be a number above 0")]),
    ({"items": [{"key": "LO1", "max_marks": -1}]}, [("items[0].max_marks", "range", "must be a number above 0")]),
    ({"items": [{"key": "LO1", "max_marks": True}]}, [("items[0].max_marks", "range", "must be a number above 0")]),
    ({"items": [{"key": "LO1", "max_marks": "10"}]}, [("items[0].max_marks", "range", "must be a number above 0")]),
    ({"items": [{"key": "LO1"}]}, [("items[0].max_marks", "range", "must be a number above 0")]),
    ({"items": [{"key": "LO1", "max_marks": 1, "choices": ["a", "b"]}]},
     [("items[0].choices", "not_allowed", "choices and answer_key are for exams only")]),
    ({"items": [{"key": "LO1", "max_marks": 1, "answer_key": "a"}]},
     [("items[0].choices", "not_allowed", "choices and answer_key are for exams only")]),
    ({"type": "Question", "level": "exam", "items": _exam_items(answer_key="d")},
     [("items[0].answer_key", "choice", "must be one of the question's choices")]),
    ({"type": "Question", "level": "exam", "items": _exam_items(choices=["a"], answer_key="a")},
     [("items[0].choices", "required", "an exam question needs 2 or more distinct options")]),
    ({"type": "Question", "level": "exam", "items": _exam_items(choices=["a", ""], answer_key="a")},
     [("items[0].choices", "required", "an exam question needs 2 or more distinct options")]),
    ({"type": "Question", "level": "exam", "items": _exam_items(choices="ab", answer_key="a")},
     [("items[0].choices", "required", "an exam question needs 2 or more distinct options")]),
    ({"type": "LO", "level": "exam", "items": _exam_items()},
     [("level", "exam", "an exam is a Question assessment evaluated by Marks")]),
    ({"grade_scale": "A"}, [("grade_scale", "type", "must be a list of {grade, min_percent}, best grade first")]),
    ({"grade_scale": [{"min_percent": 80}]}, [("grade_scale[0].grade", "required", "must be a non-empty string")]),
    ({"grade_scale": [{"grade": "", "min_percent": 80}]},
     [("grade_scale[0].grade", "required", "must be a non-empty string")]),
    ({"grade_scale": ["A"]}, [("grade_scale[0].grade", "required", "must be a non-empty string")]),
    ({"grade_scale": _grade_scale(("A", 101))},
     [("grade_scale[0].min_percent", "range", "must be a number from 0 to 100")]),
    ({"grade_scale": _grade_scale(("A", -1))},
     [("grade_scale[0].min_percent", "range", "must be a number from 0 to 100")]),
    ({"grade_scale": [{"grade": "A"}]}, [("grade_scale[0].min_percent", "range", "must be a number from 0 to 100")]),
    ({"grade_scale": _grade_scale(("A", 50), ("B", 80))},
     [("grade_scale[1].min_percent", "order", "grades go best first, with falling min_percent")]),
    ({"grade_scale": _grade_scale(("A", 50), ("B", 50))},
     [("grade_scale[1].min_percent", "order", "grades go best first, with falling min_percent")]),
    ({"grade_scale": _grade_scale(("A", 80), ("A", 50))}, [("grade_scale", "duplicate", "a grade appears twice")]),
    ({"pass_criterion": None},
     [("pass_criterion", "required", 'must be {"min_percent": n} for Marks or {"min_grade": g} for Grade')]),
    ({"pass_criterion": {"min_percent": 40, "min_grade": "A"}},
     [("pass_criterion.min_percent", "range", "must be a number from 0 to 100")]),
    ({"pass_criterion": {"min_percent": -1}}, [("pass_criterion.min_percent", "range", "must be a number from 0 to 100")]),
    ({"pass_criterion": {"min_percent": "40"}}, [("pass_criterion.min_percent", "range", "must be a number from 0 to 100")]),
    ({"evaluation": "Grade", "grade_scale": [{"grade": "A"}, {"grade": "B", "min_percent": 101}],
      "pass_criterion": {"min_grade": "A"}},
     [("grade_scale[1].min_percent", "range", "must be a number from 0 to 100, or absent")]),
    ({"evaluation": "Grade", "grade_scale": [], "pass_criterion": {"min_grade": "A"}},
     [("grade_scale", "required", "Grade evaluation needs a grade scale"),
      ("pass_criterion.min_grade", "choice", "must be a grade of the grade scale")]),
    ({"evaluation": "Grade", "grade_scale": [{"grade": "A"}], "pass_criterion": {"min_grade": "Z"}},
     [("pass_criterion.min_grade", "choice", "must be a grade of the grade scale")]),
    ({"evaluation": "Grade", "grade_scale": [{"grade": "A"}], "pass_criterion": {"min_grade": "A", "min_percent": 4}},
     [("pass_criterion.min_grade", "choice", "must be a grade of the grade scale")]),
    ({"class_ids": []}, [("class_ids", "required", "must be a non-empty list of class ids")]),
    ({"class_ids": "5A"}, [("class_ids", "required", "must be a non-empty list of class ids")]),
    ({"class_ids": [True]}, [("class_ids", "required", "must be a non-empty list of class ids")]),
    ({"class_ids": [999999999]}, [("class_ids[0]", "unknown", "class 999999999 does not exist")]),
    ({"deadline": "tomorrow"}, [("deadline", "format", "must be an ISO 8601 timestamp with a time zone")]),
    ({"sheet": {"spreadsheet_id": ""}},
     [("sheet.spreadsheet_id", "required", "must name the spreadsheet for the Summary tab")]),
    ({"sheet": "1AbC"}, [("sheet.spreadsheet_id", "required", "must name the spreadsheet for the Summary tab")]),
]


@pytest.mark.parametrize("overrides, errors", REFUSALS, ids=[f"{i}-{'-'.join(o)}" for i, (o, _) in enumerate(REFUSALS)])
def test_each_refused_definition_names_the_field_the_code_and_the_message(client, admin_key, school, conn,
                                                                          overrides, errors):
    resp = client.post("/api/v1/assessments", json={**lo_assessment([school["class_a"]]), **overrides},
                       headers=auth(admin_key))
    assert resp.status_code == 422, resp.get_json()
    assert resp.headers["Content-Type"] == "application/problem+json"
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors
    for table in ("assessments", "assessment_items", "assessment_grades", "assessment_classes"):
        assert conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"] == 0


def test_an_unsupported_combination_names_the_part_that_is_not_supported(client, admin_key, school):
    for overrides, field in (({"evaluation": "Percentage"}, "evaluation"), ({"outcome": "Boolean"}, "outcome")):
        resp = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], **overrides),
                           headers=auth(admin_key))
        assert resp.status_code == 422
        assert resp.get_json()["errors"] == [{
            "field": field, "code": "unsupported_combination",
            "message": "supported: Grade or Marks evaluation with the TSP outcome, for any type"}]


def test_a_definition_that_is_not_an_object_is_refused_saying_so(client, admin_key):
    resp = client.post("/api/v1/assessments", json=["LO check"], headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "", "code": "type", "message": "must be a JSON object"}]


@pytest.mark.parametrize("percent, pass_marks", [(0, [0, 0]), (100, [10, 5]), (45, [4.5, 2.25])])
def test_the_pass_criterion_accepts_its_bounds_and_sets_each_items_pass_marks(client, admin_key, school, percent,
                                                                               pass_marks):
    scale = _grade_scale(("A", 100), ("B", 50), ("C", 0))
    resp = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], pass_criterion={"min_percent": percent}, grade_scale=scale))
    assert resp.status_code == 201, resp.get_json()
    assert [i["pass_marks"] for i in resp.get_json()["items"]] == pass_marks
    assert resp.get_json()["grade_scale"] == scale


def test_a_created_assessment_reads_back_with_every_field(client, admin_key, collector_key, school, conn):
    conn.execute("INSERT INTO subjects (organization_id, code, name) SELECT id, 'maths', 'Maths' FROM organizations")
    conn.commit()
    body = lo_assessment([school["class_b"], school["class_a"], school["class_a"]], title="  Term 1 maths  ",
                         subject="maths", type="Unit", deadline="2099-01-01T05:30:00+05:30",
                         sheet={"spreadsheet_id": "1AbC", "ignored": True},
                         items=[{"key": "LO1", "label": "", "max_marks": 10}, {"key": "LO2", "max_marks": 2.5}])
    created = client.post("/api/v1/assessments", json=body, headers=auth(admin_key))
    assert created.status_code == 201, created.get_json()
    expected = {
        "title": "Term 1 maths", "subject": "maths", "type": "Unit", "evaluation": "Marks", "outcome": "TSP",
        "level": "student",
        "items": [{"key": "LO1", "label": "LO1", "max_marks": 10, "pass_marks": 4},
                  {"key": "LO2", "label": "LO2", "max_marks": 2.5, "pass_marks": 1}],
        "grade_scale": body["grade_scale"], "pass_criterion": {"min_percent": 40},
        "class_ids": sorted([school["class_a"], school["class_b"]]), "deadline": "2099-01-01T00:00:00+00:00",
        "sheet": {"spreadsheet_id": "1AbC"}, "closed_at": None,
    }
    for key, value in expected.items():
        assert created.get_json()[key] == value, key
    read = client.get(f"/api/v1/assessments/{created.get_json()['id']}", headers=auth(collector_key)).get_json()
    assert read == created.get_json()
    assert {k: read[k] for k in ("id", "updated_at")} == {k: created.get_json()[k] for k in ("id", "updated_at")}


def test_grades_from_the_minimum_grade_up_are_passing(client, admin_key, school, conn):
    created = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], evaluation="Grade", pass_criterion={"min_grade": "B"},
        grade_scale=[{"grade": "A"}, {"grade": "B"}, {"grade": "C"}])).get_json()
    grades = conn.execute("SELECT grade, rank, passing FROM assessment_grades WHERE assessment_id = %s ORDER BY rank",
                          (created["id"],)).fetchall()
    assert [(g["grade"], g["rank"], g["passing"]) for g in grades] == [("A", 1, True), ("B", 2, True), ("C", 3, False)]
    assert created["items"][0]["pass_marks"] is None


@pytest.mark.parametrize("edit, errors", [
    ({"items": []}, [("items", "not_patchable", "only title, deadline, class_ids, sheet, answer_keys can change")]),
    ({"title": ""}, [("title", "required", "must be a non-empty string")]),
    ({"title": None}, [("title", "required", "must be a non-empty string")]),
    ({"deadline": "soon"}, [("deadline", "format", "must be an ISO 8601 timestamp with a time zone")]),
    ({"sheet": {}}, [("sheet.spreadsheet_id", "required", "must name the spreadsheet for the Summary tab")]),
    ({"class_ids": [999999999]}, [("class_ids[0]", "unknown", "class 999999999 does not exist")]),
])
def test_a_refused_edit_says_why_and_changes_nothing(client, admin_key, school, edit, errors):
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]]), headers=auth(admin_key)).get_json()
    url = f"/api/v1/assessments/{created['id']}"
    resp = client.patch(url, json=edit, headers=auth(admin_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors
    assert client.get(url, headers=auth(admin_key)).get_json() == created


def test_an_edit_that_is_not_an_object_is_refused_and_an_unknown_id_is_404(client, admin_key, school):
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]]), headers=auth(admin_key)).get_json()
    resp = client.patch(f"/api/v1/assessments/{created['id']}", json=["title"], headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "", "code": "type", "message": "must be a JSON object"}]
    for missing in (created["id"] + 1000, "abc"):
        assert client.patch(f"/api/v1/assessments/{missing}", json={"title": "x"},
                            headers=auth(admin_key)).status_code == 404


def test_an_edit_of_classes_and_sheet_replaces_them(client, admin_key, school):
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], sheet={"spreadsheet_id": "s1"}),
                          headers=auth(admin_key)).get_json()
    url = f"/api/v1/assessments/{created['id']}"
    edited = client.patch(url, json={"class_ids": [school["class_b"]], "sheet": None}, headers=auth(admin_key))
    assert edited.status_code == 200, edited.get_json()
    assert (edited.get_json()["class_ids"], edited.get_json()["sheet"]) == ([school["class_b"]], None)
    assert edited.get_json()["updated_at"] > created["updated_at"]
    both = client.patch(url, json={"class_ids": [school["class_a"], school["class_b"]], "sheet": {"spreadsheet_id": "s2"}},
                        headers=auth(admin_key)).get_json()
    assert (both["class_ids"], both["sheet"]) == (sorted([school["class_a"], school["class_b"]]), {"spreadsheet_id": "s2"})
    assert client.get(url, headers=auth(admin_key)).get_json() == both


# Submissions, refusal by refusal: each bad entry names its field, code and message; nothing is stored.

def test_every_bad_mark_entry_says_exactly_what_is_wrong(client, admin_key, collector_key, school, assessment, conn):
    s = school["students"]
    client.delete(f"/api/v1/students/{s[2]}", headers=auth(admin_key))
    other = school["other_student"]
    batch = marks_batch(school["class_a"], [
        {"student_id": 999999, "is_present": True, "marks": {"LO1": 1}},
        {"student_id": s[2], "is_present": True, "marks": {"LO1": 1}},
        {"student_id": other, "is_present": True, "marks": {"LO1": 1}},
        {"student_id": True, "is_present": True, "marks": {"LO1": 1}},
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 10, "LO2": 0}},   # the maxima and zero: fine
        {"student_id": s[0], "is_present": False},
        {"student_id": s[1], "is_present": True, "grades": {"LO1": "A"}},
        {"student_id": s[1], "is_present": True, "marks": ["LO1", 3]},
        {"student_id": s[1], "is_present": False, "marks": {"LO1": 3}},
        {"student_id": s[1], "is_present": True, "marks": {}},
        {"student_id": s[1], "is_present": True, "marks": {"LO1": -1, "LO2": 5.5}},
        {"student_id": s[1], "is_present": True, "marks": {"LO2": True}},
    ])
    resp = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/student", json=batch,
                       headers=auth(collector_key))
    assert resp.status_code == 422
    body = resp.get_json()
    assert [(e["field"], e["code"], e["message"]) for e in body["errors"]] == [
        ("entries[0].student_id", "unknown_student", "student 999999 does not exist"),
        ("entries[1].student_id", "deleted_student", f"student {s[2]} has left the school"),
        ("entries[2].student_id", "other_class", f"student {other} is in class {school['class_b']}, not {school['class_a']}"),
        ("entries[3].student_id", "unknown_student", "student True does not exist"),
        ("entries[5].student_id", "duplicate", "the student appears twice in the batch"),
        ("entries[6].grades", "not_allowed", "this assessment is evaluated by Marks: send marks"),
        ("entries[6].marks", "required", "a present student needs marks"),
        ("entries[7].marks", "type", "must be an object of item key to value"),
        ("entries[7].marks", "required", "a present student needs marks"),
        ("entries[8].marks", "absent", "an absent student has no marks"),
        ("entries[9].marks", "required", "a present student needs marks"),
        ("entries[10].marks.LO1", "type", "must be a number of marks, 0 or more"),
        ("entries[10].marks.LO2", "marks_above_max", "5.5 is above the maximum of 5"),
        ("entries[11].marks.LO2", "type", "must be a number of marks, 0 or more"),
    ]
    assert body["detail"] == "11 of 12 entries failed validation; nothing was stored"
    assert conn.execute("SELECT count(*) AS n FROM student_marks").fetchone()["n"] == 0


def test_bad_grade_entries_name_the_grades_of_the_scale(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], evaluation="Grade", pass_criterion={"min_grade": "B"},
        grade_scale=[{"grade": "B"}, {"grade": "A"}, {"grade": "C"}])).get_json()
    s = school["students"]
    url = f"/api/v1/assessments/{created['id']}/submissions/student"
    batch = marks_batch(school["class_a"], [{"student_id": s[0], "is_present": True, "grades": {"LO1": "D"}},
                                            {"student_id": s[1], "is_present": True, "marks": {"LO1": 3}},
                                            "Meena: A"])
    resp = client.post(url, json=batch, headers=auth(collector_key))
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("entries[0].grades.LO1", "grade", "must be one of A, B, C"),
        ("entries[1].marks", "not_allowed", "this assessment is evaluated by Grade: send grades"),
        ("entries[1].grades", "required", "a present student needs grades"),
        ("entries[2]", "type", "must be an object {student_id, is_present, grades}")]
    good = marks_batch(school["class_a"], [{"student_id": s[0], "is_present": True, "grades": {"LO1": "A", "LO2": "C"}}])
    assert client.post(url, json=good, headers=auth(collector_key)).status_code == 201


def test_marks_are_stored_with_their_grade_and_a_newer_batch_supersedes_them(client, collector_key, school,
                                                                             assessment, conn):
    s = school["students"]
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    # grade scale A from 80%, B from 50%, C from 0: 8 of 10 is exactly A, 2.5 of 5 exactly B, 4.99 of 10 C
    first = marks_batch(school["class_a"], [{"student_id": s[0], "is_present": True, "marks": {"LO1": 8, "LO2": 2.5}},
                                            {"student_id": s[1], "is_present": True, "marks": {"LO1": 4.99}},
                                            {"student_id": s[2], "is_present": False}])
    assert client.post(url, json=first, headers=auth(collector_key)).status_code == 201
    rows = conn.execute("""SELECT st.roll_number, i.key, m.is_present, m.marks, m.grade, m.superseded_at IS NULL AS current
                             FROM student_marks m JOIN students st ON st.id = m.student_id
                             JOIN assessment_items i ON i.id = m.item_id ORDER BY st.roll_number, i.key""").fetchall()
    assert [(r["roll_number"], r["key"], r["is_present"], r["marks"], r["grade"], r["current"]) for r in rows] == [
        ("1", "LO1", True, 8, "A", True), ("1", "LO2", True, 2.5, "B", True), ("2", "LO1", True, Decimal("4.99"), "C", True),
        ("3", "LO1", False, None, None, True), ("3", "LO2", False, None, None, True)]
    second = marks_batch(school["class_a"], [{"student_id": s[0], "is_present": True, "marks": {"LO1": 7.99}}])
    assert client.post(url, json=second, headers=auth(collector_key)).status_code == 201
    current = conn.execute("""SELECT st.roll_number, i.key, m.marks, m.grade FROM student_marks m
                                JOIN students st ON st.id = m.student_id JOIN assessment_items i ON i.id = m.item_id
                               WHERE m.superseded_at IS NULL ORDER BY st.roll_number, i.key""").fetchall()
    assert [(r["roll_number"], r["key"], r["marks"], r["grade"]) for r in current] == [
        ("1", "LO1", Decimal("7.99"), "B"), ("1", "LO2", Decimal("2.5"), "B"), ("2", "LO1", Decimal("4.99"), "C"),
        ("3", "LO1", None, None), ("3", "LO2", None, None)]
    assert conn.execute("SELECT count(*) AS n FROM student_marks").fetchone()["n"] == 6


def test_a_bad_envelope_names_each_field(client, admin_key, collector_key, school, assessment, conn):
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    other_class = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 6, "section": "A"},
                              headers=auth(admin_key)).get_json()["id"]
    cases = [
        ({"entries": []}, [("entries", "required", "must be a non-empty list")]),
        ({"entries": {"student_id": 1}}, [("entries", "required", "must be a non-empty list")]),
        ({"class_id": 999999}, [("class_id", "unknown", "is not a class of this organization")]),
        ({"class_id": other_class},
         [("class_id", "not_assigned", f"the assessment does not apply to class {other_class}")]),
    ]
    for change, errors in cases:
        batch = {**marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}]), **change}
        resp = client.post(url, json=batch, headers=auth(collector_key))
        assert resp.status_code == 422
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors, change
    too_many = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}] * 5001)
    resp = client.post(url, json=too_many, headers=auth(collector_key))
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("entries", "too_many", "at most 5000 entries per batch")]
    wrong_level = client.post(f"/api/v1/assessments/{assessment['id']}/submissions/class", headers=auth(collector_key),
                              json={**marks_batch(school["class_a"], []), "results": [{"item": "LO1"}]})
    assert wrong_level.status_code == 422
    assert wrong_level.get_json()["errors"] == [{"field": "", "code": "wrong_level", "message":
                                                 f"assessment {assessment['id']} takes student-level submissions, not class-level"}]
    not_object = client.post(url, json=[1], headers=auth(collector_key))
    assert not_object.get_json()["errors"] == [{"field": "", "code": "type", "message": "must be a JSON object"}]
    assert conn.execute("SELECT count(*) AS n FROM assessment_submissions").fetchone()["n"] == 0


def test_a_batch_at_the_deadline_is_accepted_and_one_after_it_says_when_it_was(client, admin_key, collector_key, school,
                                                                              assessment):
    client.patch(f"/api/v1/assessments/{assessment['id']}", json={"deadline": "2026-11-20T04:30:00Z"},
                 headers=auth(admin_key))
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    at = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}])  # 10:00 +05:30
    assert client.post(url, json=at, headers=auth(collector_key)).status_code == 201
    late = {**at, "submission_id": str(uuid.uuid4()), "submitted_at": "2026-11-20T10:00:01+05:30"}
    resp = client.post(url, json=late, headers=auth(collector_key))
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("submitted_at", "closed", "the deadline was 2026-11-20T04:30:00+00:00")]


def test_a_changed_repost_is_a_conflict_saying_how_to_correct(client, collector_key, school, assessment):
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    batch = marks_batch(school["class_a"], [{"student_id": school["students"][0], "is_present": False}])
    assert client.post(url, json=batch, headers=auth(collector_key)).status_code == 201
    changed = {**batch, "class_id": school["class_b"],
               "entries": [{"student_id": school["other_student"], "is_present": False}]}
    resp = client.post(url, json=changed, headers=auth(collector_key))
    assert resp.status_code == 409
    assert resp.get_json()["detail"] == (f"submission {batch['submission_id']} was already received with different "
                                         "content; send corrections under a new submission_id")


def test_every_bad_class_result_says_what_is_wrong(client, admin_key, collector_key, school, conn):
    created = client.post("/api/v1/assessments", headers=auth(admin_key),
                          json=lo_assessment([school["class_a"]], level="class")).get_json()
    url = f"/api/v1/assessments/{created['id']}/submissions/class"
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "t"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "results": ["LO1", {"item": "LO9", "present": 1, "cleared": 1}, {"item": 1, "present": 1, "cleared": 1},
                        {"item": "LO1", "present": -1, "cleared": 10001}, {"item": "LO1", "present": True, "cleared": 1.5},
                        {"item": "LO2", "present": 10000, "cleared": 0}]}
    resp = client.post(url, json=body, headers=auth(collector_key))
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("results[0]", "type", "must be an object {item, present, cleared}"),
        ("results[1].item", "unknown_item", "'LO9' is not an item of this assessment"),
        ("results[2].item", "unknown_item", "1 is not an item of this assessment"),
        ("results[3].present", "type", "must be a whole number from 0 to 10000"),
        ("results[3].cleared", "type", "must be a whole number from 0 to 10000"),
        ("results[4].present", "type", "must be a whole number from 0 to 10000"),
        ("results[4].cleared", "type", "must be a whole number from 0 to 10000")]
    body["results"] = [{"item": "LO1", "present": 3, "cleared": 4}]
    resp = client.post(url, json=body, headers=auth(collector_key))
    assert resp.get_json()["errors"] == [{"field": "results[0].cleared", "code": "cleared_above_present",
                                          "message": "4 students cleared but only 3 were present"}]
    body["results"] = [{"item": "LO1", "present": 30, "cleared": 30}, {"item": "LO2", "present": 0, "cleared": 0}]
    assert client.post(url, json=body, headers=auth(collector_key)).status_code == 201
    newer = {**body, "submission_id": str(uuid.uuid4()), "results": [{"item": "LO1", "present": 29, "cleared": 10}]}
    assert client.post(url, json=newer, headers=auth(collector_key)).status_code == 201
    rows = conn.execute("""SELECT i.key, r.students_present, r.students_cleared FROM class_results r
                             JOIN assessment_items i ON i.id = r.item_id WHERE r.superseded_at IS NULL
                            ORDER BY i.key""").fetchall()
    assert [(r["key"], r["students_present"], r["students_cleared"]) for r in rows] == [("LO1", 29, 10), ("LO2", 0, 0)]


def test_every_bad_exam_answer_says_what_is_wrong(client, admin_key, collector_key, school, conn):
    exam = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", items=_exam_items())).get_json()
    s = school["students"]
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "tablet-3"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "answers": [[s[0], "q1", "b"], {"student_id": 999999, "question": "q1", "answer": "b"},
                        {"student_id": s[0], "question": 1, "answer": "b"},
                        {"student_id": school["other_student"], "question": "q1", "answer": "z"}]}
    resp = client.post(f"/api/v1/assessments/{exam['id']}/answers", json=body, headers=auth(collector_key))
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("answers[0]", "type", "must be an object {student_id, question, answer}"),
        ("answers[1].student_id", "unknown_student", "student 999999 does not exist"),
        ("answers[2].question", "unknown_question", "1 is not a question of this exam"),
        ("answers[3].student_id", "other_class",
         f"student {school['other_student']} is in class {school['class_b']}, not {school['class_a']}"),
        ("answers[3].answer", "choice", "must be one of a, b, c")]
    assert conn.execute("SELECT count(*) AS n FROM exam_answers").fetchone()["n"] == 0


def test_answer_batches_of_one_exam_go_in_together_and_a_close_waits_for_them(client, admin_key, school, clean_db):
    """Answers share the exam's lock (two classes' tablets are not serialised); a close takes it alone."""
    from fieldpipe.assessments import exams, submissions
    from fieldpipe.db import connect

    exam = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"], school["class_b"]], type="Question", level="exam", items=_exam_items())).get_json()

    def answers(class_id, student_id):
        return {"submission_id": str(uuid.uuid4()), "class_id": class_id, "collector": {"id": "tablet"},
                "submitted_at": "2026-11-20T10:00:00+05:30",
                "answers": [{"student_id": student_id, "question": "q1", "answer": "b"}]}

    with connect(clean_db) as first, connect(clean_db) as second:
        org = first.execute("SELECT organization_id FROM assessments WHERE id = %s", (exam["id"],)).fetchone()["organization_id"]
        submissions.submit_exam_answers(first, org, exam["id"], answers(school["class_a"], school["students"][0]))
        second.execute("SET lock_timeout = '5s'")
        _, new = submissions.submit_exam_answers(second, org, exam["id"], answers(school["class_b"], school["other_student"]))
        assert new  # not blocked by the first batch, still open
        second.commit()
        second.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            exams.close_exam(second, org, exam["id"])
        second.rollback()
        first.commit()


def test_an_assessment_without_a_sheet_is_not_one_the_summary_export_writes(client, admin_key, school, conn):
    """The daily Summary tab goes to every assessment whose `sheet IS NOT NULL` (assessments/export.py): an
    assessment created without one must store SQL NULL, not JSON null."""
    for sheet in (None, {"spreadsheet_id": "1AbC"}):
        body = lo_assessment([school["class_a"]], **({"sheet": sheet} if sheet else {}))
        assert client.post("/api/v1/assessments", json=body, headers=auth(admin_key)).status_code == 201
    rows = conn.execute("SELECT sheet FROM assessments WHERE sheet IS NOT NULL").fetchall()
    assert rows == [{"sheet": {"spreadsheet_id": "1AbC"}}]


def test_schools_page_through_in_udise_order(client, admin_key):
    h = auth(admin_key)
    for udise in ("02010100303", "02010100101", "02010100202"):
        assert client.post("/api/v1/schools", json={"udise": udise, "name": f"GPS {udise}", "district": "Shimla",
                                                     "block": "Mashobra"}, headers=h).status_code == 201
    first = client.get("/api/v1/schools?limit=2", headers=h).get_json()
    assert [s["udise"] for s in first["items"]] == ["02010100101", "02010100202"]
    rest = client.get(f"/api/v1/schools?limit=2&cursor={first['next_cursor']}", headers=h).get_json()
    assert [s["udise"] for s in rest["items"]] == ["02010100303"] and rest["next_cursor"] is None
    assert rest["items"][0] == {"udise": "02010100303", "name": "GPS 02010100303", "district": "Shimla",
                                "block": "Mashobra", "time_zone": None}


def test_a_student_csv_without_the_needed_columns_says_which_are_missing(client, admin_key, school):
    resp = client.post(f"/api/v1/classes/{school['class_a']}/students", data=b"roll,name\n1,Asha\n",
                       headers={**auth(admin_key), "Content-Type": "text/csv"})
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "csv", "code": "header", "message":
                                          "the header must name roll_number, name, parent_phone; missing roll_number"}]


def test_subjects_are_created_once_each_and_a_bad_one_is_refused(client, admin_key, conn):
    h = auth(admin_key)
    created = client.post("/api/v1/subjects", json={"code": "maths", "name": " Mathematics "}, headers=h)
    assert created.status_code == 201 and created.get_json() == {"code": "maths", "name": "Mathematics"}
    again = client.post("/api/v1/subjects", json={"code": "maths", "name": "Maths"}, headers=h)
    assert again.status_code == 409 and again.get_json()["detail"] == "subject 'maths' already exists"
    for body, errors in (({"code": "Maths", "name": "M"}, [("code", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]),
                         ({"code": "science", "name": " "}, [("name", "required", "must be a non-empty string")]),
                         (["maths"], [("", "type", "must be a JSON object")])):
        resp = client.post("/api/v1/subjects", json=body, headers=h)
        assert resp.status_code == 422
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors
    assert client.get("/api/v1/subjects", headers=h).get_json()["items"] == [{"code": "maths", "name": "Mathematics"}]


def test_imported_students_read_back_with_their_guardians_and_no_phone_as_null(client, admin_key, school):
    h = auth(admin_key)
    imported = client.post(f"/api/v1/classes/{school['class_a']}/students", headers=h, json={"students": [
        {"roll_number": "7", "name": "Sunil",
         "guardians": [{"name": "Kamla Devi", "relation": "mother", "phone": "+91 98123 45678"}]},
        {"roll_number": 8, "name": "Gita", "parent_phone": ""}]})
    assert imported.status_code == 200, imported.get_json()
    students = {s["roll_number"]: s for s in imported.get_json()["students"]}
    assert [(g["name"], g["relation"], g["phone"]) for g in students["7"]["guardians"]] == [
        ("Kamla Devi", "mother", "+919812345678")]
    assert students["7"]["parent_phone"] == "+919812345678"  # the first guardian's, when none is given
    assert students["8"]["parent_phone"] is None
    listed = client.get(f"/api/v1/classes/{school['class_a']}/students?limit=10", headers=h).get_json()["items"]
    assert [s for s in listed if s["roll_number"] in ("7", "8")] == [students["7"], students["8"]]
    empty = client.post(f"/api/v1/classes/{school['class_a']}/students", headers=h, json={"students": []})
    assert empty.get_json()["errors"] == [{"field": "students", "code": "required",
                                           "message": "must be a non-empty list of students"}]


def test_a_school_keeps_its_own_time_zone(client, admin_key):
    h = auth(admin_key)
    created = client.post("/api/v1/schools", headers=h, json={"udise": "02010100909", "name": "GPS Kaza",
                                                              "district": "Lahaul", "block": "Kaza",
                                                              "time_zone": "Asia/Kolkata"})
    assert created.status_code == 201, created.get_json()
    assert client.get("/api/v1/schools/02010100909", headers=h).get_json()["time_zone"] == "Asia/Kolkata"

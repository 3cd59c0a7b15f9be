"""Assessments API: rosters, the supported combinations, per-entry validation, idempotent submissions, ETag."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

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

"""Results per student and the app's read-back of what it sent (issue 25), over real HTTP and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from fieldpipe.assessments import results
from tests.helpers import auth
from tests.test_assessments_api import lo_assessment, marks_batch, school  # noqa: F401 (fixture)


@pytest.fixture
def assessment(client, admin_key, school):  # noqa: F811
    resp = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"], school["class_b"]]),
                       headers=auth(admin_key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def post_marks(client, key, assessment_id, class_id, entries):
    resp = client.post(f"/api/v1/assessments/{assessment_id}/submissions/student", json=marks_batch(class_id, entries),
                       headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def by_student(listing: dict) -> dict:
    return {r["student_id"]: r for r in listing["items"]}


def test_the_app_reads_back_the_marks_it_sent_with_an_etag(client, collector_key, school, assessment):
    s, h = school["students"], auth(collector_key)
    url = f"/api/v1/assessments/{assessment['id']}/submissions/student?class_id={school['class_a']}"
    empty = client.get(url, headers=h)
    assert empty.status_code == 200 and empty.get_json() == {"items": [], "next_cursor": None}
    sent = post_marks(client, collector_key, assessment["id"], school["class_a"], [
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 9.5, "LO2": 2}},
        {"student_id": s[1], "is_present": False}])
    first = client.get(url, headers=h)
    assert first.status_code == 200 and first.headers["ETag"] != empty.headers["ETag"]
    assert first.get_json()["items"] == [
        {"student_id": s[0], "class_id": school["class_a"], "is_present": True, "marks": {"LO1": 9.5, "LO2": 2},
         "submission_id": sent["submission_id"], "received_at": first.get_json()["items"][0]["received_at"]},
        {"student_id": s[1], "class_id": school["class_a"], "is_present": False, "marks": {},
         "submission_id": sent["submission_id"], "received_at": first.get_json()["items"][1]["received_at"]}]
    etag = first.headers["ETag"]
    unchanged = client.get(url, headers={**h, "If-None-Match": etag})
    assert unchanged.status_code == 304 and unchanged.headers["ETag"] == etag and unchanged.data == b""
    # marks for another class leave this class's page as it was
    post_marks(client, collector_key, assessment["id"], school["class_b"],
               [{"student_id": school["other_student"], "is_present": True, "marks": {"LO1": 1}}])
    assert client.get(url, headers={**h, "If-None-Match": etag}).status_code == 304
    # a correction of one mark changes it (the other item keeps its value)
    post_marks(client, collector_key, assessment["id"], school["class_a"],
               [{"student_id": s[0], "is_present": True, "marks": {"LO2": 3}}])
    changed = client.get(url, headers={**h, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert by_student(changed.get_json())[s[0]]["marks"] == {"LO1": 9.5, "LO2": 3}
    # without class_id: every class, paged in (class, student) order
    whole = f"/api/v1/assessments/{assessment['id']}/submissions/student"
    page = client.get(whole, query_string={"limit": 2}, headers=h).get_json()
    rest = client.get(whole, query_string={"limit": 2, "cursor": page["next_cursor"]}, headers=h).get_json()
    assert [r["student_id"] for r in page["items"] + rest["items"]] == [s[0], s[1], school["other_student"]]
    assert rest["next_cursor"] is None


def test_read_back_refusals(client, admin_key, collector_key, other_org_admin_key, school, assessment):
    h = auth(collector_key)
    base = f"/api/v1/assessments/{assessment['id']}/submissions"
    klass = client.post("/api/v1/schools/02010100101/classes", json={"grade": 7}, headers=auth(admin_key)).get_json()
    not_assigned = client.get(f"{base}/student?class_id={klass['id']}", headers=h)
    assert not_assigned.status_code == 422 and not_assigned.get_json()["errors"][0]["code"] == "not_assigned"
    assert client.get(f"{base}/student?class_id=x", headers=h).get_json()["errors"][0]["field"] == "class_id"
    wrong_level = client.get(f"{base}/class", headers=h)
    assert wrong_level.status_code == 422 and wrong_level.get_json()["errors"][0]["code"] == "wrong_level"
    assert client.get(f"{base}/student", headers=auth(other_org_admin_key)).status_code == 404
    assert client.get(f"/api/v1/assessments/{assessment['id']}/results", headers=auth(other_org_admin_key)).status_code == 404


def test_the_app_reads_back_class_results(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key),
                          json=lo_assessment([school["class_a"], school["class_b"]], level="class")).get_json()
    body = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "t"},
            "submitted_at": "2026-11-20T10:00:00+05:30",
            "results": [{"item": "LO2", "present": 30, "cleared": 12}, {"item": "LO1", "present": 30, "cleared": 25}]}
    assert client.post(f"/api/v1/assessments/{created['id']}/submissions/class", json=body,
                       headers=auth(collector_key)).status_code == 201
    url = f"/api/v1/assessments/{created['id']}/submissions/class?class_id={school['class_a']}"
    first = client.get(url, headers=auth(collector_key))
    assert [(r["item"], r["present"], r["cleared"], r["submission_id"]) for r in first.get_json()["items"]] == [
        ("LO1", 30, 25, body["submission_id"]), ("LO2", 30, 12, body["submission_id"])]
    assert client.get(url, headers={**auth(collector_key), "If-None-Match": first.headers["ETag"]}).status_code == 304


def test_results_per_student_with_totals_grades_pass_and_absence(client, collector_key, school, assessment):
    """LO1 /10 and LO2 /5 (15 in all); grades A from 80%, B from 50%, C; pass from 40%."""
    s, h = school["students"], auth(collector_key)
    post_marks(client, collector_key, assessment["id"], school["class_a"], [
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 10, "LO2": 2}},    # 12/15 = 80%: A, exactly
        {"student_id": s[1], "is_present": True, "marks": {"LO1": 4, "LO2": 2}},     # 6/15 = 40%: passes, exactly
        {"student_id": s[2], "is_present": False}])
    listing = client.get(f"/api/v1/assessments/{assessment['id']}/results", headers=h).get_json()
    got = by_student(listing)
    assert got[s[0]] == {"student_id": s[0], "class_id": school["class_a"], "roll_number": "1", "name": "Asha",
                         "status": "assessed", "marks": {"LO1": 10, "LO2": 2}, "grades": {"LO1": "A", "LO2": "C"},
                         "total_marks": 12, "max_marks": 15, "percentage": 80, "grade": "A", "passed": True}
    assert (got[s[1]]["total_marks"], got[s[1]]["percentage"], got[s[1]]["grade"], got[s[1]]["passed"]) == (6, 40, "C", True)
    assert (got[s[2]]["status"], got[s[2]]["marks"], got[s[2]]["total_marks"], got[s[2]]["passed"]) == (
        "absent", {"LO1": None, "LO2": None}, None, False)
    assert (got[school["other_student"]]["status"], got[school["other_student"]]["passed"]) == ("not_assessed", None)
    one_class = client.get(f"/api/v1/assessments/{assessment['id']}/results?class_id={school['class_b']}", headers=h)
    assert [r["student_id"] for r in one_class.get_json()["items"]] == [school["other_student"]]

    # A correction (LO2 2 -> 1.9: 5.9/15 = 39.33%) fails the student now, and as of before it they still passed.
    before = client.get("/api/v1/assessments", headers=h).get_json()["items"][0]["classes"][0]["last_received_at"]
    post_marks(client, collector_key, assessment["id"], school["class_a"],
               [{"student_id": s[1], "is_present": True, "marks": {"LO2": 1.9}}])
    now = by_student(client.get(f"/api/v1/assessments/{assessment['id']}/results", headers=h).get_json())[s[1]]
    assert (now["total_marks"], now["percentage"], now["passed"]) == (5.9, 39.33, False)
    as_of = dt.datetime.fromisoformat(before) + dt.timedelta(microseconds=1)
    then = client.get(f"/api/v1/assessments/{assessment['id']}/results",
                      query_string={"as_of": as_of.isoformat()}, headers=h).get_json()
    assert by_student(then)[s[1]]["passed"] is True and by_student(then)[s[1]]["total_marks"] == 6
    ancient = client.get(f"/api/v1/assessments/{assessment['id']}/results",
                         query_string={"as_of": "2000-01-01T00:00:00+00:00"}, headers=h).get_json()
    assert ancient["items"] == []  # nobody was enrolled yet
    bad = client.get(f"/api/v1/assessments/{assessment['id']}/results?as_of=yesterday", headers=h)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "as_of"


def test_a_student_who_left_keeps_their_result_and_one_added_later_is_not_in_the_past(
        client, admin_key, collector_key, school, assessment):
    s, h = school["students"], auth(collector_key)
    post_marks(client, collector_key, assessment["id"], school["class_a"],
               [{"student_id": s[0], "is_present": True, "marks": {"LO1": 5, "LO2": 5}}])
    stamp = client.get("/api/v1/assessments", headers=h).get_json()["items"][0]["classes"][0]["last_received_at"]
    assert client.delete(f"/api/v1/students/{s[0]}", headers=auth(admin_key)).status_code == 200
    client.post(f"/api/v1/classes/{school['class_a']}/students", headers=auth(admin_key),
                json={"students": [{"roll_number": "9", "name": "Late"}]})
    listed = by_student(client.get(f"/api/v1/assessments/{assessment['id']}/results", headers=h).get_json())
    assert listed[s[0]]["total_marks"] == 10 and len(listed) == 5
    past = client.get(f"/api/v1/assessments/{assessment['id']}/results", query_string={"as_of": stamp}, headers=h)
    assert len(past.get_json()["items"]) == 4  # the late student was not yet in the class


def test_grade_evaluation_results_take_the_mean_rank(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], evaluation="Grade", pass_criterion={"min_grade": "B"},
        grade_scale=[{"grade": "A"}, {"grade": "B"}, {"grade": "C"}])).get_json()
    s = school["students"]
    post_marks(client, collector_key, created["id"], school["class_a"], [
        {"student_id": s[0], "is_present": True, "grades": {"LO1": "A", "LO2": "B"}},  # mean rank 1.5 -> A
        {"student_id": s[1], "is_present": True, "grades": {"LO1": "B", "LO2": "C"}}])  # 2.5 -> B: still passes
    got = by_student(client.get(f"/api/v1/assessments/{created['id']}/results", headers=auth(collector_key)).get_json())
    assert (got[s[0]]["grade"], got[s[0]]["passed"], got[s[0]]["total_marks"], got[s[0]]["max_marks"]) == ("A", True, None, None)
    assert (got[s[1]]["grade"], got[s[1]]["passed"], got[s[1]]["grades"]) == ("B", True, {"LO1": "B", "LO2": "C"})
    assert client.get(f"/api/v1/assessments/{created['id']}/submissions/student",
                      headers=auth(collector_key)).get_json()["items"][0]["grades"] == {"LO1": "A", "LO2": "B"}


def test_student_results_for_announcements(conn, client, collector_key, school, assessment):
    """The domain function issue 18's result announcements call: named students only, as of now."""
    s = school["students"]
    post_marks(client, collector_key, assessment["id"], school["class_a"],
               [{"student_id": s[0], "is_present": True, "marks": {"LO1": 7, "LO2": 5}}])
    org = conn.execute("SELECT organization_id FROM assessments").fetchone()["organization_id"]
    got = results.student_results(conn, org, assessment["id"], [s[0], s[1], 999999])
    assert [(r["student_id"], r["status"], r["total_marks"], r["grade"]) for r in got] == [
        (s[0], "assessed", 12, "A"), (s[1], "not_assessed", None, None)]


def test_a_backfilled_day_lists_the_students_marked_then_even_if_the_roster_came_later(conn):
    """The demo's marks count from 2 November, its roster rows were made at load time: a daily run for
    3 November (a catch-up after make up) lists the six students marked, and the same again later."""
    from fieldpipe import paging
    from fieldpipe.dev.demo import load_demo

    org = load_demo(conn)
    assessment = conn.execute("SELECT id FROM assessments WHERE organization_id = %s ORDER BY id LIMIT 1",
                              (org,)).fetchone()["id"]
    as_of = dt.datetime(2026, 11, 4, tzinfo=dt.timezone.utc)

    def listed():
        page = results.list_results(conn, org, assessment, paging.Page(results.RESULTS), as_of=as_of)
        return [(r["roll_number"], r["status"], r["total_marks"], r["grade"]) for r in page["items"]]

    first = listed()
    assert first == [("1", "assessed", 18, "A"), ("2", "assessed", 11, "C"), ("3", "assessed", 8, "C"),
                     ("4", "assessed", 20, "A"), ("5", "absent", None, None), ("6", "assessed", 9, "C")]
    from fieldpipe.assessments import roster

    class_id = conn.execute("SELECT class_id FROM student_marks LIMIT 1").fetchone()["class_id"]
    roster.import_students(conn, org, class_id, [{"roll_number": "99", "name": "Newcomer"}])
    assert listed() == first  # a student added today is not in a past day's results
    now = results.list_results(conn, org, assessment, paging.Page(results.RESULTS))["items"]
    assert now[-1]["roll_number"] == "99" and now[-1]["status"] == "not_assessed"  # but is in today's


def test_results_page_through_class_by_class_student_by_student(client, collector_key, school, assessment):
    h = auth(collector_key)
    url = f"/api/v1/assessments/{assessment['id']}/results?limit=2"
    seen, cursor = [], None
    for _ in range(5):
        page = client.get(url + (f"&cursor={cursor}" if cursor else ""), headers=h).get_json()
        assert len(page["items"]) <= 2
        seen += [r["student_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*school["students"], school["other_student"]]  # 5A's three, then 5B's one


def test_every_refused_read_back_or_results_query_says_exactly_why(client, admin_key, collector_key, school,
                                                                   assessment):
    h = auth(collector_key)
    klass = client.post("/api/v1/schools/02010100101/classes", json={"grade": 7}, headers=auth(admin_key)).get_json()
    class_level = client.post("/api/v1/assessments", headers=auth(admin_key),
                              json=lo_assessment([school["class_a"]], level="class")).get_json()
    submissions = f"/api/v1/assessments/{assessment['id']}/submissions"
    not_assigned = ("class_id", "not_assigned", f"the assessment does not apply to class {klass['id']}")
    timestamp = ("as_of", "timestamp", "must be an ISO 8601 timestamp with an offset")
    cases = [
        (f"{submissions}/student?class_id={klass['id']}", not_assigned),
        (f"{submissions}/class", ("", "wrong_level", f"assessment {assessment['id']} takes student-level "
                                                    "submissions, not class-level")),
        (f"/api/v1/assessments/{class_level['id']}/submissions/student",
         ("", "wrong_level", f"assessment {class_level['id']} takes class-level submissions, not student-level")),
        (f"/api/v1/assessments/{class_level['id']}/submissions/class?class_id={klass['id']}", not_assigned),
        (f"{submissions}/student?class_id=5A", ("class_id", "type", "must be a class id")),
        (f"/api/v1/assessments/{assessment['id']}/results?class_id={klass['id']}", not_assigned),
        (f"/api/v1/assessments/{assessment['id']}/results?class_id=-1", ("class_id", "type", "must be a class id")),
        (f"/api/v1/assessments/{assessment['id']}/results?as_of=2026-11-20T10:00:00", timestamp),
        (f"/api/v1/assessments/{assessment['id']}/results?as_of=yesterday", timestamp),
        (f"/api/v1/assessments/{assessment['id']}/results.csv?as_of=2026-11-31T10:00:00%2B05:30", timestamp),
    ]
    for url, error in cases:
        resp = client.get(url, headers=h)
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json", (url, resp.get_json())
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [error], url
    ok = client.get(f"/api/v1/assessments/{assessment['id']}/results?as_of=2026-11-20T10:00:00%2B05:30", headers=h)
    assert ok.status_code == 200, ok.get_json()


def test_class_results_read_back_page_through_class_then_item(client, admin_key, collector_key, school):
    created = client.post("/api/v1/assessments", headers=auth(admin_key),
                          json=lo_assessment([school["class_a"], school["class_b"]], level="class")).get_json()
    for class_id, cleared in ((school["class_b"], 7), (school["class_a"], 9)):
        body = {"submission_id": str(uuid.uuid4()), "class_id": class_id, "collector": {"id": "t"},
                "submitted_at": "2026-11-20T10:00:00+05:30",
                "results": [{"item": "LO2", "present": 10, "cleared": cleared}, {"item": "LO1", "present": 10, "cleared": 5}]}
        assert client.post(f"/api/v1/assessments/{created['id']}/submissions/class", json=body,
                           headers=auth(collector_key)).status_code == 201
    url = f"/api/v1/assessments/{created['id']}/submissions/class?limit=3"
    first = client.get(url, headers=auth(collector_key)).get_json()
    rest = client.get(f"{url}&cursor={first['next_cursor']}", headers=auth(collector_key)).get_json()
    assert [(r["class_id"], r["item"], r["cleared"]) for r in first["items"] + rest["items"]] == [
        (school["class_a"], "LO1", 5), (school["class_a"], "LO2", 9), (school["class_b"], "LO1", 5),
        (school["class_b"], "LO2", 7)]
    assert rest["next_cursor"] is None
    only_b = client.get(f"{url}&class_id={school['class_b']}", headers=auth(collector_key)).get_json()["items"]
    assert [(r["class_id"], r["item"]) for r in only_b] == [(school["class_b"], "LO1"), (school["class_b"], "LO2")]


def test_new_marks_rewrite_the_results_tab_of_a_marked_assessment_and_a_graded_one_shows_grades(
        client, admin_key, collector_key, school, assessment, conn, tmp_path, monkeypatch, caplog):
    from openpyxl import load_workbook

    from fieldpipe.assessments.export import RESULTS_TAB, export_changed_results, export_results_as_of

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    caplog.set_level("INFO", logger="fieldpipe.assessments")
    s, h = school["students"], auth(admin_key)

    def tab(assessment_id):
        book = load_workbook(tmp_path / "exports" / f"assessment-{assessment_id}.xlsx")
        return [tuple(r) for r in book[RESULTS_TAB].iter_rows(values_only=True)]

    client.patch(f"/api/v1/assessments/{assessment['id']}", json={"sheet": {"spreadsheet_id": "lo"}}, headers=h)
    assert export_changed_results(conn, None) == {}  # no marks yet: nothing changed
    assert "Results tabs of changed assessments: none changed" in caplog.messages
    post_marks(client, collector_key, assessment["id"], school["class_a"], [
        {"student_id": s[0], "is_present": True, "marks": {"LO1": 8, "LO2": 4}}, {"student_id": s[1], "is_present": False}])
    assert export_changed_results(conn, None) == {assessment["id"]: 4}
    assert f"Results tabs of changed assessments: assessment {assessment['id']}: 4 students" in caplog.messages
    assert tab(assessment["id"]) == [
        ("class", "roll number", "name", "status", "LO1", "LO2", "total", "percentage", "grade", "passed"),
        ("5A", "1", "Asha", "assessed", 8, 4, 12, 80, "A", "yes"),
        ("5A", "2", "Ravi", "absent", None, None, None, None, None, "no"),
        ("5A", "3", "Meena", "not_assessed", None, None, None, None, None, None),
        ("5B", "1", "Kiran", "not_assessed", None, None, None, None, None, None)]
    assert export_changed_results(conn, None) == {}
    post_marks(client, collector_key, assessment["id"], school["class_b"],
               [{"student_id": school["other_student"], "is_present": True, "marks": {"LO1": 1, "LO2": 1}}])
    assert export_changed_results(conn, None) == {assessment["id"]: 4}  # new marks: written again
    assert tab(assessment["id"])[4] == ("5B", "1", "Kiran", "assessed", 1, 1, 2, 13.33, "C", "no")

    graded = client.post("/api/v1/assessments", headers=h, json=lo_assessment(
        [school["class_a"]], evaluation="Grade", pass_criterion={"min_grade": "B"}, sheet={"spreadsheet_id": "g"},
        grade_scale=[{"grade": "A"}, {"grade": "B"}, {"grade": "C"}])).get_json()
    post_marks(client, collector_key, graded["id"], school["class_a"],
               [{"student_id": s[0], "is_present": True, "grades": {"LO1": "A", "LO2": "B"}}])
    now = conn.execute("SELECT now() AS t").fetchone()["t"]
    assert export_results_as_of(conn, now, None) == {assessment["id"]: 4, graded["id"]: 3}
    assert tab(graded["id"])[:2] == [
        ("class", "roll number", "name", "status", "LO1", "LO2", "total", "percentage", "grade", "passed"),
        ("5A", "1", "Asha", "assessed", "A", "B", None, None, "A", "yes")]
    before_any = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
    assert export_results_as_of(conn, before_any, None) == {}  # neither existed, nor had marks, then

"""Rosters through the API: schools, classes, students and subjects. Every refusal names its field, code and message
and stores nothing; what is stored reads back as it was sent (trimmed); listings page in their documented order."""

from __future__ import annotations

import pytest

from tests.helpers import auth
from tests.test_assessments_api import school  # noqa: F401 (fixture)

SCHOOL = {"udise": "02010100707", "name": "GPS Kufri", "district": "Shimla", "block": "Mashobra"}
REQUIRED = "must be a non-empty string"
UDISE_MESSAGE = "must be the school's 11-digit UDISE code"


def errors_of(resp) -> list[tuple]:
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json", resp.get_json()
    return [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]]


def count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


@pytest.mark.parametrize("body,errors", [
    ({}, [("udise", "pattern", UDISE_MESSAGE), ("name", "required", REQUIRED), ("district", "required", REQUIRED),
          ("block", "required", REQUIRED)]),
    ({**SCHOOL, "udise": "0201010070"}, [("udise", "pattern", UDISE_MESSAGE)]),
    ({**SCHOOL, "udise": "020101007070"}, [("udise", "pattern", UDISE_MESSAGE)]),
    ({**SCHOOL, "udise": "0201010070a"}, [("udise", "pattern", UDISE_MESSAGE)]),
    ({**SCHOOL, "udise": "02010100707\n"}, [("udise", "pattern", UDISE_MESSAGE)]),
    ({**SCHOOL, "udise": 2010100707}, [("udise", "pattern", UDISE_MESSAGE)]),
    ({**SCHOOL, "name": " ", "block": None}, [("name", "required", REQUIRED), ("block", "required", REQUIRED)]),
    ({**SCHOOL, "district": ["Shimla"]}, [("district", "required", REQUIRED)]),
    ({**SCHOOL, "time_zone": "Mars/Olympus"}, [("time_zone", "enum", "must be an IANA time zone such as Asia/Kolkata, "
                                                                     "or null for the organization's (GET /api/v1/sms-policy)")]),
    ([SCHOOL], [("", "type", "must be a JSON object")]),
])
def test_a_refused_school_names_each_field_and_stores_nothing(client, admin_key, conn, body, errors):
    assert errors_of(client.post("/api/v1/schools", json=body, headers=auth(admin_key))) == errors
    assert count(conn, "schools") == 0


def test_a_school_is_stored_trimmed_once_and_read_back_by_its_code(client, admin_key, conn):
    h = auth(admin_key)
    created = client.post("/api/v1/schools", headers=h, json={**SCHOOL, "name": "  GPS Kufri ", "block": " Mashobra"})
    assert created.status_code == 201 and created.headers["Location"] == "/api/v1/schools/02010100707"
    expected = {**SCHOOL, "time_zone": None}
    assert created.get_json() == expected
    assert client.get("/api/v1/schools/02010100707", headers=h).get_json() == expected
    again = client.post("/api/v1/schools", headers=h, json={**SCHOOL, "name": "Another"})
    assert again.status_code == 409 and again.get_json()["detail"] == "school 02010100707 already exists"
    assert client.get("/api/v1/schools/02010100708", headers=h).status_code == 404
    assert count(conn, "schools") == 1


@pytest.mark.parametrize("body,errors", [
    ({}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": 0}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": 13}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": True}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": "5"}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": 5.5}, [("grade", "range", "must be an integer from 1 to 12")]),
    ({"grade": 5, "section": " "}, [("section", "type", REQUIRED)]),
    ({"grade": 5, "section": 1}, [("section", "type", REQUIRED)]),
    ({"grade": 0, "section": ""}, [("grade", "range", "must be an integer from 1 to 12"), ("section", "type", REQUIRED)]),
    ("grade 5", [("", "type", "must be a JSON object")]),
])
def test_a_refused_class_names_each_field_and_stores_nothing(client, admin_key, conn, body, errors):
    h = auth(admin_key)
    assert client.post("/api/v1/schools", json=SCHOOL, headers=h).status_code == 201
    assert errors_of(client.post(f"/api/v1/schools/{SCHOOL['udise']}/classes", json=body, headers=h)) == errors
    assert count(conn, "classes") == 0


def test_classes_are_created_once_and_page_through_by_grade_then_section(client, admin_key, conn):
    h = auth(admin_key)
    assert client.post("/api/v1/schools", json=SCHOOL, headers=h).status_code == 201
    url = f"/api/v1/schools/{SCHOOL['udise']}/classes"
    created = {}
    for body in ({"grade": 10}, {"grade": 9, "section": " B "}, {"grade": 1}, {"grade": 12}, {"grade": 9, "section": "A"}):
        resp = client.post(url, json=body, headers=h)
        assert resp.status_code == 201, resp.get_json()
        created[(resp.get_json()["grade"], resp.get_json()["section"])] = resp.get_json()
    assert set(created) == {(10, "A"), (9, "B"), (1, "A"), (12, "A"), (9, "A")}  # section A unless given, trimmed
    assert created[(9, "B")] == {"id": created[(9, "B")]["id"], "school": SCHOOL["udise"], "grade": 9, "section": "B"}
    again = client.post(url, json={"grade": 9, "section": "B"}, headers=h)
    assert again.status_code == 409 and again.get_json()["detail"] == f"class 9B already exists in school {SCHOOL['udise']}"
    pages, cursor = [], None
    while True:
        page = client.get(url + "?limit=2" + (f"&cursor={cursor}" if cursor else ""), headers=h).get_json()
        pages.append([(c["grade"], c["section"]) for c in page["items"]])
        if not (cursor := page["next_cursor"]):
            break
    assert pages == [[(1, "A"), (9, "A")], [(9, "B"), (10, "A")], [(12, "A")]]  # grades as numbers: 9 before 10
    assert client.get(url + "?limit=10", headers=h).get_json()["items"][1] == created[(9, "A")]
    assert client.post("/api/v1/schools/02010100708/classes", json={"grade": 1}, headers=h).status_code == 404
    assert client.get("/api/v1/schools/02010100708/classes", headers=h).status_code == 404
    assert count(conn, "classes") == 5


@pytest.mark.parametrize("students,errors", [
    (["Asha"], [("students[0]", "type", "must be an object")]),
    ([{"roll_number": "9"}], [("students[0].name", "required", REQUIRED)]),
    ([{"roll_number": True, "name": "Asha"}], [("students[0].roll_number", "required", REQUIRED)]),
    ([{"roll_number": " ", "name": "Asha"}], [("students[0].roll_number", "required", REQUIRED)]),
    ([{"roll_number": "9", "name": "Asha"}, {"roll_number": "10", "name": "Ravi"}, {"roll_number": 9, "name": "Gita"}],
     [("students[2].roll_number", "duplicate", "roll number '9' is also in students[0]")]),
    ([{"roll_number": "9", "name": "Asha", "guardians": []}],
     [("students[0].guardians", "required", "must be a non-empty list of guardians")]),
    ("Asha", [("students", "required", "must be a non-empty list of students")]),
    ([{"roll_number": str(n), "name": "S"} for n in range(5001)],
     [("students", "too_many", "at most 5000 students per import")]),
])
def test_a_refused_student_import_names_each_entry_and_stores_nothing(client, admin_key, conn, school, students,  # noqa: F811
                                                                      errors):
    before = {t: count(conn, t) for t in ("students", "guardians", "enrollments")}
    resp = client.post(f"/api/v1/classes/{school['class_a']}/students", json={"students": students},
                       headers=auth(admin_key))
    assert errors_of(resp) == errors
    assert {t: count(conn, t) for t in before} == before


def test_a_student_import_counts_created_updated_and_unchanged_and_trims(client, admin_key, school):  # noqa: F811
    h = auth(admin_key)
    url = f"/api/v1/classes/{school['class_a']}/students"
    first = client.post(url, headers=h, json={"students": [{"roll_number": 12, "name": " Sunil "},
                                                           {"roll_number": " 13 ", "name": "Gita"}]}).get_json()
    assert (first["created"], first["updated"], first["unchanged"]) == (2, 0, 0)
    assert [(s["roll_number"], s["name"], s["status"], s["class_id"]) for s in first["students"]] == [
        ("12", "Sunil", "enrolled", school["class_a"]), ("13", "Gita", "enrolled", school["class_a"])]
    again = client.post(url, headers=h, json={"students": [{"roll_number": "12", "name": "Sunil"},
                                                           {"roll_number": "13", "name": "Gita Rani"}]}).get_json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 1, 1)
    assert [s["name"] for s in again["students"]] == ["Sunil", "Gita Rani"]


def test_a_parent_phone_alone_becomes_the_guardian_parent_whom_announcements_reach(client, admin_key, school):  # noqa: F811
    h = auth(admin_key)
    resp = client.post(f"/api/v1/classes/{school['class_a']}/students", headers=h, json={"students": [
        {"roll_number": "21", "name": "Sunil", "parent_phone": "+91 98123 45678"}]})
    assert resp.status_code == 200, resp.get_json()
    student = resp.get_json()["students"][0]
    assert student["parent_phone"] == "+919812345678"
    assert student["guardians"] == [{"name": "Parent", "relation": "guardian", "phone": "+919812345678",
                                     "preferred_language": "hi", "opted_out": False}]


def test_a_csv_guardians_opt_out_reads_yes_no_and_numbers_and_refuses_other_words(client, admin_key, school):  # noqa: F811
    h = {**auth(admin_key), "Content-Type": "text/csv"}
    url = f"/api/v1/classes/{school['class_a']}/students"
    header = "roll_number,name,guardian_name,guardian_relation,guardian_phone,guardian_opted_out\n"
    ok = client.post(url, headers=h, data=(header + "31,Asha,Kamla,mother,+919812345678, Yes\n"
                                                    "32,Ravi,Mohan,father,+919812345679,0\n"
                                                    "33,Gita,Sita,mother,+919812345670,\n").encode())
    assert ok.status_code == 200, ok.get_json()
    assert [s["guardians"][0]["opted_out"] for s in ok.get_json()["students"]] == [True, False, False]
    bad = client.post(url, headers=h, data=(header + "34,Meena,Rani,mother,+919812345671,maybe\n").encode())
    assert errors_of(bad) == [("students[0].guardians[0].opted_out", "type", "must be true or false")]


def test_a_removed_student_leaves_the_roster_keeps_the_first_removal_and_returns_when_imported_again(
        client, admin_key, collector_key, school, conn):  # noqa: F811
    h = auth(admin_key)
    url = f"/api/v1/classes/{school['class_a']}/students"
    ravi = school["students"][1]
    removed = client.delete(f"/api/v1/students/{ravi}", headers=h)
    assert removed.status_code == 200 and removed.get_json()["id"] == ravi and removed.get_json()["deleted_at"]
    again = client.delete(f"/api/v1/students/{ravi}", headers=h).get_json()
    assert again["deleted_at"] == removed.get_json()["deleted_at"]  # removing twice keeps when it happened
    assert [s["roll_number"] for s in client.get(url, headers=h).get_json()["items"]] == ["1", "3"]
    assert [s["roll_number"] for s in client.get(url + "?include_deleted=true", headers=h).get_json()["items"]] == [
        "1", "2", "3"]
    assert errors_of(client.get(url + "?include_deleted=yes", headers=h)) == [
        ("include_deleted", "enum", "must be true or false")]
    for missing in ("999999", "abc"):
        assert client.delete(f"/api/v1/students/{missing}", headers=h).status_code == 404
    back = client.post(url, headers=h, json={"students": [{"roll_number": "2", "name": "Ravi"}]}).get_json()
    assert (back["updated"], back["students"][0]["deleted_at"]) == (1, None)
    assert [s["roll_number"] for s in client.get(url, headers=h).get_json()["items"]] == ["1", "2", "3"]


def test_subjects_page_through_by_code(client, admin_key):
    h = auth(admin_key)
    for code in ("science", "english", "maths"):
        assert client.post("/api/v1/subjects", json={"code": code, "name": code.title()}, headers=h).status_code == 201
    first = client.get("/api/v1/subjects?limit=2", headers=h).get_json()
    assert [s["code"] for s in first["items"]] == ["english", "maths"]
    rest = client.get(f"/api/v1/subjects?limit=2&cursor={first['next_cursor']}", headers=h).get_json()
    assert rest == {"items": [{"code": "science", "name": "Science"}], "next_cursor": None}


def test_a_code_with_a_trailing_newline_is_refused_not_stored(client, admin_key, conn):
    h = auth(admin_key)
    assert errors_of(client.post("/api/v1/subjects", json={"code": "maths\n", "name": "Maths"}, headers=h)) == [
        ("code", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]
    assert count(conn, "subjects") == 0

"""Students sit exams themselves (issue 25): PIN slips, sign-in for a token, one answer per request, closing an
exam grades it at once, a corrected key regrades; every refusal stores nothing. Real HTTP, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid

import jwt
import pytest

from fieldpipe.assessments import signin
from tests.helpers import auth
from tests.test_assessments_api import UDISE, lo_assessment, school  # noqa: F401 (fixture)


@pytest.fixture
def exam(client, admin_key, school):  # noqa: F811
    """A two-question exam (q1 /1 key b, q2 /2 key a: 3 marks, pass from 50%) for class 5A."""
    resp = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", title="Quiz",
        items=[{"key": "q1", "max_marks": 1, "choices": ["a", "b", "c"], "answer_key": "b"},
               {"key": "q2", "max_marks": 2, "choices": ["a", "b"], "answer_key": "a"}],
        pass_criterion={"min_percent": 50}, grade_scale=[{"grade": "A", "min_percent": 60}, {"grade": "B", "min_percent": 0}]))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


@pytest.fixture
def slips(client, admin_key, school):  # noqa: F811
    resp = client.post(f"/api/v1/classes/{school['class_a']}/student-signins", json={}, headers=auth(admin_key))
    assert resp.status_code == 201, resp.get_json()
    return {s["roll_number"]: s for s in resp.get_json()["slips"]}


def sign_in(client, class_id, roll_number, pin):
    return client.post("/api/v1/auth/student", json={"class_id": class_id, "roll_number": roll_number, "pin": pin})


@pytest.fixture
def tokens(client, school, slips):  # noqa: F811
    """Tokens of 5A's roll numbers 1 and 2."""
    out = {}
    for roll in ("1", "2"):
        resp = sign_in(client, school["class_a"], roll, slips[roll]["pin"])
        assert resp.status_code == 200, resp.get_json()
        out[roll] = resp.get_json()
    return out


def answer(client, token: dict, exam_id, question, choice, answer_id=None, student_id=None):
    return client.post(f"/api/v1/students/{student_id or token['student']['id']}/exams/{exam_id}/answers",
                       json={"answer_id": answer_id or str(uuid.uuid4()), "question": question, "answer": choice},
                       headers=auth(token["token"]))


def count(conn, table="exam_answers") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def test_pins_are_issued_per_class_once_and_stored_only_as_hashes(client, admin_key, collector_key, conn, school, slips):
    assert sorted(slips) == ["1", "2", "3"] and all(len(s["pin"]) == 6 and s["pin"].isdigit() for s in slips.values())
    stored = conn.execute("SELECT pin_hash FROM student_signins").fetchall()
    assert len(stored) == 3 and not any(s["pin"] in r["pin_hash"] for s in slips.values() for r in stored)
    # each is scrypt (N=2^14, r=8, p=1) of the PIN with its own 16-byte salt, checked here with hashlib alone
    by_student = {r["student_id"]: r["pin_hash"] for r in conn.execute("SELECT student_id, pin_hash FROM student_signins")}
    for slip in slips.values():
        parts = re.fullmatch(r"scrypt\$16384\$([0-9a-f]{32})\$([0-9a-f]{64})", by_student[slip["student_id"]])
        assert parts, by_student[slip["student_id"]]
        assert hashlib.scrypt(slip["pin"].encode(), salt=bytes.fromhex(parts[1]), n=2 ** 14, r=8, p=1,
                              dklen=32).hex() == parts[2]
    assert len({h.split("$")[2] for h in by_student.values()}) == 3  # no salt shared
    assert client.post(f"/api/v1/classes/{school['class_a']}/student-signins", json={},
                       headers=auth(collector_key)).status_code == 403
    # reissuing one student's slip replaces only their PIN
    again = client.post(f"/api/v1/classes/{school['class_a']}/student-signins",
                        json={"student_ids": [school["students"][0]]}, headers=auth(admin_key)).get_json()
    assert [s["roll_number"] for s in again["slips"]] == ["1"]
    if again["slips"][0]["pin"] != slips["1"]["pin"]:
        assert sign_in(client, school["class_a"], "1", slips["1"]["pin"]).status_code == 401  # the old PIN is gone
    assert sign_in(client, school["class_a"], "1", again["slips"][0]["pin"]).status_code == 200
    assert sign_in(client, school["class_a"], "2", slips["2"]["pin"]).status_code == 200
    other_class = client.post(f"/api/v1/classes/{school['class_a']}/student-signins",
                              json={"student_ids": [school["other_student"]]}, headers=auth(admin_key))
    assert other_class.status_code == 422 and other_class.get_json()["errors"][0]["code"] == "unknown_student"


def test_sign_in_gives_a_short_lived_token_for_that_student(client, school, slips):
    resp = sign_in(client, school["class_a"], "2", slips["2"]["pin"])
    body = resp.get_json()
    assert resp.status_code == 200 and body["token_type"] == "Bearer"
    assert body["student"] == {"id": school["students"][1], "class_id": school["class_a"], "roll_number": "2",
                               "name": "Ravi"}
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == str(school["students"][1]) and claims["exp"] - claims["iat"] == 180 * 60
    # the same slip works again (a phone restarted mid-exam)
    assert sign_in(client, school["class_a"], "2", slips["2"]["pin"]).status_code == 200
    for wrong in ({"roll_number": "2", "pin": "000000" if slips["2"]["pin"] != "000000" else "111111"},
                  {"roll_number": "99", "pin": slips["2"]["pin"]}):
        refused = sign_in(client, school["class_a"], **wrong)
        assert refused.status_code == 401 and refused.get_json()["code"] == "401.1" and "token" not in refused.get_json()
    assert sign_in(client, school["class_b"], "2", slips["2"]["pin"]).status_code == 401  # another class's roll 2
    bad = client.post("/api/v1/auth/student", json={"class_id": "x", "roll_number": "", "pin": "12"})
    assert bad.status_code == 422 and {e["field"] for e in bad.get_json()["errors"]} == {"class_id", "roll_number", "pin"}


def test_every_refused_sign_in_says_exactly_what_is_wrong(client, admin_key, conn, school, slips):
    slip = {"class_id": school["class_a"], "roll_number": "1", "pin": slips["1"]["pin"]}
    class_id = ("class_id", "required", "must be the class id printed on the slip")
    roll = ("roll_number", "required", "must be the roll number printed on the slip")
    pin = ("pin", "pattern", "must be the 6-digit PIN printed on the slip")
    code = ("code", "pattern", "must be the sign-in code of a slip's QR code")
    cases = [
        ([slip], [("", "type", "must be a JSON object {class_id, roll_number, pin} or {code}")]),
        ({}, [class_id, roll, pin]),
        ({**slip, "class_id": str(school["class_a"])}, [class_id]),
        ({**slip, "class_id": True}, [class_id]),
        ({**slip, "roll_number": " "}, [roll]),
        ({**slip, "roll_number": "1" * 65}, [roll]),
        ({**slip, "pin": slip["pin"][:5]}, [pin]),
        ({**slip, "pin": slip["pin"] + "0"}, [pin]),
        ({**slip, "pin": "12345a"}, [pin]),
        ({**slip, "pin": "١٢٣٤٥٦"}, [pin]),  # Arabic-Indic digits are digits, but not the slip's
        ({**slip, "pin": 123456}, [pin]),
        ({**slip, "student_id": 1}, [("student_id", "unknown_member",
                                      "send class_id, roll_number and pin, or the slip's code alone")]),
        ({"code": slips["1"]["signin_code"] + "A"}, [code]),
        ({"code": slips["1"]["signin_code"][:21] + "+"}, [code]),
        ({"code": None}, [code]),
        ({"code": slips["1"]["signin_code"], "roll_number": "1"},
         [("roll_number", "unknown_member", "send the code alone, as the slip's QR code has it")]),
    ]
    for body, errors in cases:
        resp = client.post("/api/v1/auth/student", json=body)
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json", (body, resp.get_json())
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors, body
    wrong = "000000" if slip["pin"] != "000000" else "111111"
    for body, detail in (({**slip, "pin": wrong}, "the class id, roll number or PIN is wrong"),
                         ({**slip, "roll_number": "99"}, "the class id, roll number or PIN is wrong"),
                         ({"code": "A" * 22}, "the sign-in code is not valid; sign in with the PIN on the slip")):
        resp = client.post("/api/v1/auth/student", json=body)
        assert (resp.status_code, resp.get_json()["detail"]) == (401, detail), body
    assert client.post("/api/v1/auth/student", json={"code": slips["1"]["signin_code"]}).status_code == 200
    used = client.post("/api/v1/auth/student", json={"code": slips["1"]["signin_code"]}).get_json()
    assert used["detail"] == "this slip's sign-in code was used already; sign in with the PIN on the slip"
    conn.execute("UPDATE student_signins SET expires_at = now() - interval '1 second'")  # the slips have expired
    expired = [client.post("/api/v1/auth/student", json=body) for body in (
        {**slip, "roll_number": "2", "pin": slips["2"]["pin"]}, {"code": slips["2"]["signin_code"]})]
    assert [r.status_code for r in expired] == [401, 401]
    assert conn.execute("SELECT failed_attempts FROM student_signins WHERE student_id = %s",
                        (school["students"][1],)).fetchone()["failed_attempts"] == 1  # an expired PIN counts as wrong


def test_a_token_names_its_student_class_and_organization_and_lasts_its_minutes(client, conn, school, slips):
    resp = sign_in(client, school["class_a"], "2", slips["2"]["pin"]).get_json()
    claims = jwt.decode(resp["token"], signin._token_key(), algorithms=["HS256"], issuer="fieldpipe")
    organization = conn.execute("SELECT organization_id FROM schools").fetchone()["organization_id"]
    assert {k: claims[k] for k in ("iss", "scope", "sub", "cls", "org")} == {
        "iss": "fieldpipe", "scope": "student", "sub": str(school["students"][1]), "cls": school["class_a"],
        "org": organization}
    assert dt.datetime.fromisoformat(resp["expires_at"].replace("Z", "+00:00")).timestamp() == claims["exp"]
    signed_in = conn.execute("SELECT last_signed_in_at FROM student_signins WHERE student_id = %s",
                             (school["students"][1],)).fetchone()["last_signed_in_at"]
    assert signed_in is not None


def test_pins_for_named_students_are_refused_saying_which_are_not_current(client, admin_key, conn, school, slips):
    url = f"/api/v1/classes/{school['class_a']}/student-signins"
    before = conn.execute("SELECT student_id, pin_hash FROM student_signins ORDER BY student_id").fetchall()
    cases = [
        ({"student_ids": []}, [("student_ids", "type", "must be a non-empty list of student ids")]),
        ({"student_ids": school["students"][0]}, [("student_ids", "type", "must be a non-empty list of student ids")]),
        ({"student_ids": [school["students"][0], "x", school["other_student"]]}, [
            ("student_ids[1]", "unknown_student", f"student 'x' is not a current student of class {school['class_a']}"),
            ("student_ids[2]", "unknown_student",
             f"student {school['other_student']} is not a current student of class {school['class_a']}")]),
        ([school["students"][0]], [("", "type", "must be a JSON object")]),
    ]
    for body, errors in cases:
        resp = client.post(url, json=body, headers=auth(admin_key))
        assert resp.status_code == 422, (body, resp.get_json())
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors, body
    assert conn.execute("SELECT student_id, pin_hash FROM student_signins ORDER BY student_id").fetchall() == before
    issued = client.post(url, json={"student_ids": None}, headers=auth(admin_key)).get_json()  # every current student
    assert (issued["class_id"], issued["school"], issued["grade"], issued["section"]) == (school["class_a"], UDISE, 5, "A")
    assert [s["roll_number"] for s in issued["slips"]] == ["1", "2", "3"] and issued["expires_at"]
    lives = conn.execute("SELECT DISTINCT expires_at - issued_at AS life, failed_attempts FROM student_signins").fetchall()
    assert lives == [{"life": dt.timedelta(days=30), "failed_attempts": 0}]  # FIELDPIPE_STUDENT_PIN_DAYS' default
    locked = conn.execute("SELECT locked_until FROM student_signins WHERE locked_until IS NOT NULL").fetchall()
    assert locked == []
    empty = client.post("/api/v1/schools/02010100101/classes", json={"grade": 8}, headers=auth(admin_key)).get_json()
    none = client.post(f"/api/v1/classes/{empty['id']}/student-signins", json={}, headers=auth(admin_key)).get_json()
    assert (none["slips"], none["expires_at"]) == ([], None)


def test_a_pin_tried_too_often_locks_that_students_sign_in_for_a_while(client, admin_key, conn, school, slips):
    wrong = "000000" if slips["1"]["pin"] != "000000" else "111111"
    statuses = [sign_in(client, school["class_a"], "1", wrong).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 429]
    locked = sign_in(client, school["class_a"], "1", slips["1"]["pin"])  # even the right PIN, while locked
    assert locked.status_code == 429 and locked.get_json()["code"] == "429.1" and locked.get_json()["locked_until"]
    assert sign_in(client, school["class_a"], "2", slips["2"]["pin"]).status_code == 200  # others are not locked
    conn.execute("UPDATE student_signins SET locked_until = now() - interval '1 second'")  # the while has passed
    assert sign_in(client, school["class_a"], "1", slips["1"]["pin"]).status_code == 200
    # four failures then a success start the count again
    for _ in range(4):
        sign_in(client, school["class_a"], "1", wrong)
    assert sign_in(client, school["class_a"], "1", slips["1"]["pin"]).status_code == 200
    assert sign_in(client, school["class_a"], "1", wrong).status_code == 401


def test_a_new_slip_ends_a_lockout_and_its_pin_works_at_once(client, admin_key, conn, school, slips):
    wrong = "000000" if slips["1"]["pin"] != "000000" else "111111"
    assert [sign_in(client, school["class_a"], "1", wrong).status_code for _ in range(5)][-1] == 429
    row = conn.execute("SELECT failed_attempts, locked_until FROM student_signins WHERE student_id = %s",
                       (school["students"][0],)).fetchone()
    assert row["failed_attempts"] == 0 and row["locked_until"] is not None  # the count starts again after a lock
    [new] = client.post(f"/api/v1/classes/{school['class_a']}/student-signins",
                        json={"student_ids": [school["students"][0]]}, headers=auth(admin_key)).get_json()["slips"]
    assert sign_in(client, school["class_a"], "1", new["pin"]).status_code == 200


def test_the_slips_qr_code_signs_its_student_in_once(client, admin_key, conn, school, exam, slips):
    import json

    import segno

    mine, theirs = slips["2"], slips["3"]
    assert mine["qr_svg"] == segno.make(mine["qr_payload"], error="m", micro=False).svg_data_uri(border=2)
    assert mine["qr_svg"].startswith("data:image/svg+xml") and mine["signin_code"] != theirs["signin_code"]
    stored = conn.execute("SELECT code_hash FROM student_signins").fetchall()
    assert len(stored) == 3 and not any(s["signin_code"] in r["code_hash"] for s in slips.values() for r in stored)
    scanned = client.post("/api/v1/auth/student", json=json.loads(mine["qr_payload"]))  # what a phone scans, posted
    assert scanned.status_code == 200, scanned.get_json()
    token = scanned.get_json()
    assert token["student"]["id"] == school["students"][1] and token["student"]["roll_number"] == "2"
    assert answer(client, token, exam["id"], "q1", "b").status_code == 201
    used = client.post("/api/v1/auth/student", json={"code": mine["signin_code"]})  # it works once
    assert used.status_code == 401 and used.get_json()["code"] == "401.1" and "token" not in used.get_json()
    assert sign_in(client, school["class_a"], "2", mine["pin"]).status_code == 200  # the PIN remains
    # a reissued slip's code replaces the old one
    wrong = "000000" if theirs["pin"] != "000000" else "111111"
    again = client.post(f"/api/v1/classes/{school['class_a']}/student-signins",
                        json={"student_ids": [school["students"][2]]}, headers=auth(admin_key)).get_json()["slips"][0]
    assert client.post("/api/v1/auth/student", json={"code": theirs["signin_code"]}).status_code == 401
    # a locked sign-in refuses the code too
    for _ in range(5):
        sign_in(client, school["class_a"], "3", wrong if wrong != again["pin"] else "222222")
    locked = client.post("/api/v1/auth/student", json={"code": again["signin_code"]})
    assert locked.status_code == 429 and locked.get_json()["code"] == "429.1"
    conn.execute("UPDATE student_signins SET locked_until = NULL")
    assert client.post("/api/v1/auth/student", json={"code": again["signin_code"]}).status_code == 200
    for body, field, code in (({"code": "short"}, "code", "pattern"), ({"code": 7}, "code", "pattern"),
                              ({"code": again["signin_code"], "pin": "123456"}, "pin", "unknown_member"),
                              ({**STUDENT_SLIP, "extra": 1}, "extra", "unknown_member")):
        bad = client.post("/api/v1/auth/student", json=body)
        assert bad.status_code == 422 and (bad.get_json()["errors"][0]["field"], bad.get_json()["errors"][0]["code"]) == (
            field, code), body


STUDENT_SLIP = {"class_id": 1, "roll_number": "1", "pin": "123456"}


def test_a_student_sees_their_open_exams_without_keys_and_answers_them(client, conn, school, exam, tokens):
    me = tokens["1"]
    listing = client.get(f"/api/v1/students/{me['student']['id']}/exams", headers=auth(me["token"]))
    assert listing.status_code == 200
    [listed] = listing.get_json()["items"]
    assert listed["id"] == exam["id"] and listed["answers"] == {}
    assert all("answer_key" not in q for q in listed["items"]) and listed["items"][0]["choices"] == ["a", "b", "c"]
    answer_id = str(uuid.uuid4())
    first = answer(client, me, exam["id"], "q1", "a", answer_id)
    assert first.status_code == 201, first.get_json()
    retry = answer(client, me, exam["id"], "q1", "a", answer_id)
    assert retry.status_code == 200 and retry.get_json() == first.get_json()
    changed = answer(client, me, exam["id"], "q1", "c", answer_id)
    assert changed.status_code == 409 and changed.get_json()["code"] == "409.1"
    assert answer(client, me, exam["id"], "q1", "b").status_code == 201  # changed their mind: the latest counts
    assert count(conn) == 2
    own = client.get(f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers", headers=auth(me["token"]))
    assert own.get_json() == {"assessment_id": exam["id"], "student_id": me["student"]["id"], "closed": False,
                              "answers": {"q1": "b"}}
    listed = client.get(f"/api/v1/students/{me['student']['id']}/exams", headers=auth(me["token"])).get_json()
    assert listed["items"][0]["answers"] == {"q1": "b"}


def test_bad_answers_are_refused_clearly_and_store_nothing(client, admin_key, conn, school, exam, tokens):
    me, other = tokens["1"], tokens["2"]
    cases = [
        (answer(client, me, exam["id"], "q9", "a"), 422, "unknown_question"),
        (answer(client, me, exam["id"], "q1", "d"), 422, "choice"),
        (answer(client, me, exam["id"], "q1", "A"), 422, "choice"),  # choices are exact
        (answer(client, me, exam["id"], "q1", "a", student_id=other["student"]["id"]), 403, None),
        (answer(client, me, exam["id"], "q1", "a", answer_id="not-a-uuid"), 422, "format"),
    ]
    for resp, status, code in cases:
        assert resp.status_code == status, resp.get_json()
        assert resp.mimetype == "application/problem+json"
        if code:
            assert resp.get_json()["errors"][0]["code"] == code
    # another class's exam is not theirs
    other_exam = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment(
        [school["class_b"]], type="Question", level="exam",
        items=[{"key": "q1", "max_marks": 1, "choices": ["a", "b"], "answer_key": "a"}])).get_json()
    assert answer(client, me, other_exam["id"], "q1", "a").status_code == 404
    # another student's answers cannot be read
    assert client.get(f"/api/v1/students/{other['student']['id']}/exams/{exam['id']}/answers",
                      headers=auth(me["token"])).status_code == 403
    assert client.get(f"/api/v1/students/{other['student']['id']}/exams", headers=auth(me["token"])).status_code == 403
    assert count(conn) == 0


def test_every_bad_answer_body_names_its_field_code_and_message_and_stores_nothing(client, conn, exam, tokens):
    me = tokens["1"]
    url = f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers"
    good = {"answer_id": str(uuid.uuid4()), "question": "q1", "answer": "b"}
    whole = ("", "type", "must be a JSON object {answer_id, question, answer}")
    required = "must be a non-empty string"
    cases = [
        (["q1", "b"], [whole]),
        ("q1=b", [whole]),
        ({**good, "student_id": 7}, [("student_id", "unknown_member", "send answer_id, question and answer only")]),
        ({"question": "q1", "answer": "b"}, [("answer_id", "format", "must be a UUID made on the device for this answer")]),
        ({**good, "answer_id": 12}, [("answer_id", "format", "must be a UUID made on the device for this answer")]),
        ({**good, "question": ""}, [("question", "required", required)]),
        ({**good, "answer": ["b"]}, [("answer", "required", required)]),
        ({"extra": 1}, [("extra", "unknown_member", "send answer_id, question and answer only"),
                        ("answer_id", "format", "must be a UUID made on the device for this answer"),
                        ("question", "required", required), ("answer", "required", required)]),
    ]
    for body, errors in cases:
        resp = client.post(url, json=body, headers=auth(me["token"]))
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json", (body, resp.get_json())
        assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == errors, body
    assert count(conn) == 0


def test_answer_keys_are_refused_naming_the_field_and_nothing_is_regraded(client, admin_key, school, conn, exam):  # noqa: F811
    def patch(assessment_id, answer_keys):
        resp = client.patch(f"/api/v1/assessments/{assessment_id}", json={"answer_keys": answer_keys},
                            headers=auth(admin_key))
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json", resp.get_json()
        return [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]]

    keys = "must be an object of question key to the correct choice"
    assert patch(exam["id"], {}) == [("answer_keys", "type", keys)]
    assert patch(exam["id"], ["b", "a"]) == [("answer_keys", "type", keys)]
    assert patch(exam["id"], {"q1": "c", "q2": "c", "q7": "a"}) == [
        ("answer_keys.q2", "choice", "must be one of a, b"),
        ("answer_keys.q7", "unknown_question", "is not a question of this exam")]
    marks = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment([school["class_a"]])).get_json()
    assert patch(marks["id"], {"q1": "a"}) == [("answer_keys", "not_an_exam", "only exam questions have answer keys")]
    stored = {r["key"]: r["answer_key"] for r in conn.execute(
        "SELECT key, answer_key FROM assessment_items WHERE assessment_id = %s", (exam["id"],))}
    assert stored == {"q1": "b", "q2": "a"}  # q1's valid "c" was not applied beside the refused keys


def test_an_answer_is_receipted_as_sent_and_each_refusal_says_why(client, admin_key, conn, exam, tokens):
    me, other = tokens["1"], tokens["2"]
    answer_id = str(uuid.uuid4())
    first = answer(client, me, exam["id"], "q2", "b", answer_id)
    assert first.status_code == 201 and first.get_json()["received_at"]
    assert {k: v for k, v in first.get_json().items() if k != "received_at"} == {
        "answer_id": answer_id, "assessment_id": exam["id"], "question": "q2", "answer": "b"}
    stored = conn.execute("SELECT student_id, class_id, answer, answer_id FROM exam_answers").fetchone()
    assert stored == {"student_id": me["student"]["id"], "class_id": me["student"]["class_id"], "answer": "b",
                      "answer_id": uuid.UUID(answer_id)}

    def refusal(resp):
        body = resp.get_json()
        return resp.status_code, body.get("detail"), [(e["field"], e["code"], e["message"]) for e in body.get("errors", [])]

    assert refusal(answer(client, me, exam["id"], "q2", "a", answer_id)) == (
        409, f"answer {answer_id} was already received with a different question or choice; send a changed answer "
             "under a new answer_id", [])
    assert refusal(answer(client, me, exam["id"], "q3", "a"))[2] == [
        ("question", "unknown_question", "'q3' is not a question of this exam")]
    assert refusal(answer(client, me, exam["id"], "q1", "d"))[2] == [("answer", "choice", "must be one of a, b, c")]
    assert refusal(answer(client, me, exam["id"], "q1", "a", student_id=other["student"]["id"]))[:2] == (
        403, "a student token reaches only its own student's exams and answers")
    assert refusal(answer(client, me, "abc", "q1", "a"))[:2] == (404, "exam 'abc' was not found")
    client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key))
    assert refusal(answer(client, me, exam["id"], "q1", "b"))[2] == [("", "exam_closed", f"exam {exam['id']} is closed to answers")]
    # a retry of an answer received before the close is still its receipt
    assert answer(client, me, exam["id"], "q2", "b", answer_id).get_json() == first.get_json()
    own = client.get(f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers", headers=auth(me["token"]))
    assert own.get_json() == {"assessment_id": exam["id"], "student_id": me["student"]["id"], "closed": True,
                              "answers": {"q2": "b"}}
    assert count(conn) == 1


def test_a_student_lists_the_open_exams_of_their_class_a_page_at_a_time(client, admin_key, conn, school, exam, tokens):
    me = tokens["1"]
    h = auth(admin_key)
    items = [{"key": "q1", "max_marks": 1, "choices": ["a", "b"], "answer_key": "a"}]
    second = client.post("/api/v1/assessments", headers=h, json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", title="Quiz 2", items=items)).get_json()
    past = client.post("/api/v1/assessments", headers=h, json=lo_assessment(
        [school["class_a"]], type="Question", level="exam", title="Quiz 3", items=items)).get_json()
    conn.execute("UPDATE assessments SET deadline = now() - interval '1 second' WHERE id = %s", (past["id"],))
    url = f"/api/v1/students/{me['student']['id']}/exams?limit=1"
    first = client.get(url, headers=auth(me["token"])).get_json()
    rest = client.get(f"{url}&cursor={first['next_cursor']}", headers=auth(me["token"])).get_json()
    assert [e["id"] for e in first["items"] + rest["items"]] == [exam["id"], second["id"]]  # not the past one
    assert rest["next_cursor"] is None and first["items"][0]["title"] == "Quiz"


def test_tokens_that_are_not_ours_or_expired_are_refused(client, conn, school, exam, tokens, admin_key):
    me = tokens["1"]
    url = f"/api/v1/students/{me['student']['id']}/exams"
    claims = jwt.decode(me["token"], options={"verify_signature": False})
    forged = jwt.encode(claims, "another key, long enough for HS256 signing", algorithm="HS256")
    expired = jwt.encode({**claims, "exp": dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)},
                         signin.DEVELOPMENT_KEY, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (forged, expired, unsigned, me["token"][:-2] + "xx", "eyJ.x.y"):
        resp = client.get(url, headers=auth(token))
        assert resp.status_code == 401 and resp.get_json()["code"] == "401.1", token
    assert client.get(url, headers=auth(admin_key)).status_code == 403  # an API key is not a student token
    assert client.get(url).status_code == 401


def test_closing_an_exam_grades_it_at_once_and_refuses_later_answers(client, admin_key, collector_key, conn, school,
                                                                      exam, tokens):
    me, other = tokens["1"], tokens["2"]
    for token, question, choice in ((me, "q1", "b"), (me, "q2", "a"), (other, "q1", "a"), (other, "q2", "b"),
                                    (other, "q2", "a")):
        assert answer(client, token, exam["id"], question, choice).status_code == 201
    assert client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(collector_key)).status_code == 403
    closed = client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key))
    assert closed.status_code == 200, closed.get_json()
    body = closed.get_json()
    assert (body["answers_graded"], body["students_answered"]) == (5, 2) and body["closed_at"]
    results = {r["roll_number"]: r for r in client.get(f"/api/v1/assessments/{exam['id']}/results",
                                                       headers=auth(collector_key)).get_json()["items"]}
    assert (results["1"]["total_marks"], results["1"]["percentage"], results["1"]["grade"], results["1"]["passed"]) == (
        3, 100, "A", True)
    assert (results["2"]["marks"], results["2"]["total_marks"], results["2"]["passed"]) == ({"q1": 0, "q2": 2}, 2, True)
    assert (results["3"]["status"], results["3"]["passed"]) == ("absent", False)  # answered nothing
    again = client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key)).get_json()
    assert again["closed_at"] == body["closed_at"] and again["answers_graded"] == 0
    # answers after the close: the student's, and a teacher's batch, refused; nothing stored
    late = answer(client, me, exam["id"], "q1", "c")
    assert late.status_code == 422 and late.get_json()["errors"][0]["code"] == "exam_closed"
    batch = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "collector": {"id": "t"},
             "submitted_at": "2026-11-20T10:00:00+05:30",
             "answers": [{"student_id": school["students"][2], "question": "q1", "answer": "b"}]}
    teacher = client.post(f"/api/v1/assessments/{exam['id']}/answers", json=batch, headers=auth(collector_key))
    assert teacher.status_code == 422 and teacher.get_json()["errors"][0]["code"] == "exam_closed"
    assert count(conn) == 5
    assert client.get(f"/api/v1/students/{me['student']['id']}/exams", headers=auth(me["token"])).get_json()["items"] == []
    assert client.get(f"/api/v1/assessments?school={UDISE}", headers=auth(collector_key)).get_json()["items"] == []
    # only exams close
    other = client.post("/api/v1/assessments", headers=auth(admin_key), json=lo_assessment([school["class_a"]])).get_json()
    not_exam = client.post(f"/api/v1/assessments/{other['id']}/close", headers=auth(admin_key))
    assert not_exam.status_code == 422 and not_exam.get_json()["errors"][0]["code"] == "not_an_exam"


def test_a_corrected_answer_key_regrades_exactly_the_affected_answers(client, admin_key, collector_key, conn, exam,
                                                                       tokens):
    me, other = tokens["1"], tokens["2"]
    answer(client, me, exam["id"], "q1", "b")
    answer(client, me, exam["id"], "q2", "a")
    answer(client, other, exam["id"], "q1", "c")
    client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key))
    before = {r["id"]: r["graded_key"] for r in conn.execute("SELECT id, graded_key FROM exam_answers")}
    bad = client.patch(f"/api/v1/assessments/{exam['id']}", json={"answer_keys": {"q1": "z", "q7": "a"}},
                       headers=auth(admin_key))
    assert bad.status_code == 422 and {e["code"] for e in bad.get_json()["errors"]} == {"choice", "unknown_question"}
    fixed = client.patch(f"/api/v1/assessments/{exam['id']}", json={"answer_keys": {"q1": "c"}}, headers=auth(admin_key))
    assert fixed.status_code == 200 and fixed.get_json()["items"][0]["answer_key"] == "c"
    after = {r["id"]: r["graded_key"] for r in conn.execute("SELECT id, graded_key FROM exam_answers")}
    assert {i for i in after if after[i] != before[i]} == {i for i, k in before.items() if k == "b"}  # q1's only
    results = {r["student_id"]: r["total_marks"] for r in client.get(
        f"/api/v1/assessments/{exam['id']}/results", headers=auth(collector_key)).get_json()["items"]}
    assert results[me["student"]["id"]] == 2 and results[other["student"]["id"]] == 1


def test_closing_shows_the_scores_in_the_results_tab_within_a_run_and_as_csv(client, admin_key, collector_key, conn,
                                                                             school, exam, tokens, tmp_path, monkeypatch):
    from openpyxl import load_workbook

    from fieldpipe.assessments.export import RESULTS_TAB, export_changed_results

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    client.patch(f"/api/v1/assessments/{exam['id']}", json={"sheet": {"spreadsheet_id": "quiz"}}, headers=auth(admin_key))
    client.post(f"/api/v1/classes/{school['class_a']}/students", headers=auth(admin_key),
                json={"students": [{"roll_number": "4", "name": "=HYPERLINK(\"x\")"}]})
    answer(client, tokens["1"], exam["id"], "q1", "b")
    answer(client, tokens["1"], exam["id"], "q2", "b")
    assert export_changed_results(conn, None) == {}  # an open exam's answers are not graded yet: no tab
    client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key))
    assert export_changed_results(conn, None) == {exam["id"]: 4}
    assert export_changed_results(conn, None) == {}  # nothing changed since
    rows = list(load_workbook(tmp_path / "exports" / f"assessment-{exam['id']}.xlsx")[RESULTS_TAB].iter_rows(values_only=True))
    assert list(rows[0]) == ["class", "roll number", "name", "status", "q1", "q2", "total", "percentage", "grade", "passed"]
    assert list(rows[1]) == ["5A", "1", "Asha", "assessed", 1, 0, 1, 33.33, "B", "no"]
    assert list(rows[2])[:4] == ["5A", "2", "Ravi", "absent"]
    client.patch(f"/api/v1/assessments/{exam['id']}", json={"answer_keys": {"q2": "b"}}, headers=auth(admin_key))
    assert export_changed_results(conn, None) == {exam["id"]: 4}  # the corrected key changed the results
    rows = list(load_workbook(tmp_path / "exports" / f"assessment-{exam['id']}.xlsx")[RESULTS_TAB].iter_rows(values_only=True))
    assert list(rows[1])[4:] == [1, 2, 3, 100, "A", "yes"]

    download = client.get(f"/api/v1/assessments/{exam['id']}/results.csv", headers=auth(collector_key))
    assert download.status_code == 200 and download.mimetype == "text/csv"
    text = download.data.decode("utf-8-sig").splitlines()
    assert text[0] == "class,roll number,name,status,q1,q2,total,percentage,grade,passed"
    assert text[1] == "5A,1,Asha,assessed,1,2,3,100,A,yes"
    assert text[4].startswith("5A,4,\"'=HYPERLINK(\"\"x\"\")\",absent")  # a name that looks like a formula stays text
    again = client.get(f"/api/v1/assessments/{exam['id']}/results.csv",
                       headers={**auth(collector_key), "If-None-Match": download.headers["ETag"]})
    assert again.status_code == 304


def test_the_demo_exam_is_signed_into_answered_and_scored_on_close(conn, client):
    from fieldpipe.dev.demo import load_demo
    from fieldpipe.dev.demo_exams import demo_student_slip, slip_page
    from fieldpipe.orgs import create_key

    org = load_demo(conn)
    load_demo(conn)  # make up again: the same exam, the classmates' answers a duplicate
    key = create_key(conn, "demo", "admin")
    slip = demo_student_slip(conn, org)
    page = slip_page(slip)
    assert slip["pin"] in page and slip["qr_svg"] in page and slip["name"] in page  # make up writes it under var/
    token = sign_in(client, slip["class_id"], slip["roll_number"], slip["pin"]).get_json()
    me = token["student"]["id"]
    [exam] = client.get(f"/api/v1/students/{me}/exams", headers=auth(token["token"])).get_json()["items"]
    for question, choice in (("Q1", "3/4"), ("Q2", "2/3"), ("Q3", "90"), ("Q4", "219"), ("Q5", "12 cm")):
        assert answer(client, token, exam["id"], question, choice).status_code == 201
    assert client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(key)).status_code == 200
    results = {r["roll_number"]: r for r in client.get(
        f"/api/v1/assessments/{exam['id']}/results?class_id={slip['class_id']}", headers=auth(key)).get_json()["items"]}
    assert (results["1"]["total_marks"], results["1"]["percentage"], results["1"]["grade"]) == (8, 80, "A")
    assert (results["2"]["total_marks"], results["3"]["total_marks"], results["4"]["status"]) == (8, 4, "absent")
    load_demo(conn)  # the next make up: a fresh exam to sit, the closed one kept
    assert len(client.get(f"/api/v1/students/{me}/exams", headers=auth(token["token"])).get_json()["items"]) == 1


def test_answers_racing_a_close_are_either_graded_by_it_or_refused(live_api, client, admin_key, conn, exam, tokens):
    """Phones keep answering while the admin closes: every answer stored is graded, every later one refused."""
    import threading
    import time

    import requests

    outcomes: list[int] = []
    stop = threading.Event()

    def phone(token: dict) -> None:
        with requests.Session() as session:
            while not stop.is_set():
                resp = session.post(f"{live_api}/api/v1/students/{token['student']['id']}/exams/{exam['id']}/answers",
                                    json={"answer_id": str(uuid.uuid4()), "question": "q1", "answer": "b"},
                                    headers=auth(token["token"]), timeout=30)
                outcomes.append(resp.status_code)
                if resp.status_code == 422:
                    return

    phones = [threading.Thread(target=phone, args=(t,)) for t in tokens.values() for _ in range(3)]
    for thread in phones:
        thread.start()
    deadline = time.monotonic() + 60
    while count(conn) < 30 and time.monotonic() < deadline:  # answers are flowing
        time.sleep(0.05)
    closed = client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key)).get_json()
    for thread in phones:
        thread.join(timeout=60)
    stop.set()
    stored = conn.execute("SELECT count(*) AS n, count(marks) AS graded FROM exam_answers").fetchone()
    assert stored["n"] >= 30 and stored["graded"] == stored["n"] == outcomes.count(201) == closed["answers_graded"]
    assert outcomes.count(422) == len(phones) and set(outcomes) == {201, 422}


def test_the_daily_results_run_writes_exams_closed_before_its_instant_and_says_so(
        client, admin_key, conn, school, exam, tokens, tmp_path, monkeypatch, caplog):
    import datetime as dt

    from openpyxl import load_workbook

    from fieldpipe.assessments.export import RESULTS_TAB, export_results_as_of

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    caplog.set_level("INFO", logger="fieldpipe.assessments")
    client.patch(f"/api/v1/assessments/{exam['id']}", json={"sheet": {"spreadsheet_id": "quiz"}}, headers=auth(admin_key))
    answer(client, tokens["1"], exam["id"], "q1", "b")
    before_close = conn.execute("SELECT now() AS t").fetchone()["t"]
    client.post(f"/api/v1/assessments/{exam['id']}/close", headers=auth(admin_key))
    assert export_results_as_of(conn, before_close, None) == {}
    assert f"Results tabs as of {before_close.isoformat()}: none to write" in caplog.messages
    after = before_close + dt.timedelta(minutes=5)
    assert export_results_as_of(conn, after, None) == {exam["id"]: 3}
    assert f"Results tabs as of {after.isoformat()}: assessment {exam['id']}: 3 students" in caplog.messages
    rows = list(load_workbook(tmp_path / "exports" / f"assessment-{exam['id']}.xlsx")[RESULTS_TAB].iter_rows(values_only=True))
    assert list(rows[1])[:4] == ["5A", "1", "Asha", "assessed"]


def test_an_answer_waiting_on_a_close_in_progress_is_refused_once_the_close_commits(live_api, admin_key, db_url,
                                                                                    conn, exam, tokens):
    """A close that has taken the exam's lock and marked it closed, not yet committed: an answer sent meanwhile
    waits for it, then sees the exam closed (its check reads after the lock is granted), and stores nothing."""
    import threading
    import time

    import psycopg
    import requests

    me = tokens["1"]
    closing = psycopg.connect(db_url)
    closing.execute("SELECT pg_advisory_xact_lock(hashtextextended('exam:' || %s, 0))", (exam["id"],))
    closing.execute("UPDATE assessments SET closed_at = now() WHERE id = %s", (exam["id"],))
    outcome: list = []
    phone = threading.Thread(target=lambda: outcome.append(requests.post(
        f"{live_api}/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers",
        json={"answer_id": str(uuid.uuid4()), "question": "q1", "answer": "b"}, headers=auth(me["token"]), timeout=60)))
    phone.start()
    try:
        deadline = time.monotonic() + 60
        while not conn.execute("""SELECT 1 FROM pg_stat_activity WHERE wait_event = 'advisory'
                                     AND query LIKE '%%INSERT INTO exam_answers%%'""").fetchone():
            assert time.monotonic() < deadline, "the answer never waited for the close"
            assert phone.is_alive(), outcome[0].json()
            time.sleep(0.05)
    finally:
        closing.commit()
        closing.close()
    phone.join(timeout=60)
    assert outcome[0].status_code == 422 and outcome[0].json()["errors"][0]["code"] == "exam_closed"
    assert count(conn) == 0


def test_a_remembered_token_stops_working_when_it_expires(client, exam, tokens):
    import time

    me = tokens["1"]
    expires = int(time.time()) + 2
    claims = {**jwt.decode(me["token"], options={"verify_signature": False}), "exp": expires}
    short = {**me, "token": jwt.encode(claims, signin._token_key(), algorithm="HS256")}
    assert answer(client, short, exam["id"], "q1", "b").status_code == 201  # verified, and now remembered
    while time.time() < expires + 0.05:
        time.sleep(0.1)
    resp = answer(client, short, exam["id"], "q1", "a")
    assert resp.status_code == 401 and resp.get_json()["code"] == "401.1"

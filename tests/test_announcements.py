"""Announcements to parents end to end: templates, audiences, fan-out to the SMS outbox exactly once, the file
provider's sent.jsonl, progress, cancel, approval by a second admin, quiet hours, the daily cap, results."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections import Counter
from zoneinfo import ZoneInfo

import pytest

from fieldpipe.announcements.fanout import fan_out_due
from fieldpipe.db import connect
from fieldpipe.sms.dispatch import dispatch
from fieldpipe.sms.outbox import NewMessage, enqueue
from fieldpipe.sms.providers import FileProvider
from fieldpipe.sms.segments import count_segments
from tests.conftest import _key
from tests.helpers import auth
from tests.test_sms import _dispatch_in_subprocess, _kill_when, fast

UDISE, OTHER_UDISE = "02010100101", "02010100102"
HOLIDAY = {"name": "holiday", "kind": "holiday",
           "bodies": {"hi": "प्रिय अभिभावक, {school} में {date} को अवकाश रहेगा। छात्र: {student} ({class})",
                      "en": "Dear parent, {school} is closed on {date}. Student: {student} ({class})"}}
RESULT = {"name": "result", "kind": "result",
          "bodies": {"hi": "{student} ({class}) को {assessment} में {marks}/{max_marks} अंक ({percent}%), ग्रेड {grade}",
                     "en": "{student} ({class}) scored {marks}/{max_marks} ({percent}%) in {assessment}, grade {grade}"}}
MOTHER, FATHER, AUNT, OPTED_OUT = "+919800000001", "+919800000002", "+919800000003", "+919800000004"


def guardian(phone, language="hi", relation="mother", opted_out=False, name="Sunita"):
    return {"name": name, "relation": relation, "phone": phone, "preferred_language": language, "opted_out": opted_out}


@pytest.fixture
def roster(client, admin_key):
    """School 1: class 5A with Asha and Ravi (siblings: the same mother, Ravi also the father), Meena (no phone),
    Kiran (an opted-out guardian); class 5B with Dev (an English-speaking aunt). School 2 in another block."""
    h = auth(admin_key)
    for udise, block in ((UDISE, "Mashobra"), (OTHER_UDISE, "Theog")):
        assert client.post("/api/v1/schools", json={"udise": udise, "name": f"GPS {block}", "district": "Shimla",
                                                     "block": block}, headers=h).status_code == 201
    class_a = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 5, "section": "A"}, headers=h).get_json()["id"]
    class_b = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 5, "section": "B"}, headers=h).get_json()["id"]
    other = client.post(f"/api/v1/schools/{OTHER_UDISE}/classes", json={"grade": 3}, headers=h).get_json()["id"]
    students = client.post(f"/api/v1/classes/{class_a}/students", headers=h, json={"students": [
        {"roll_number": "1", "name": "Asha", "guardians": [guardian(MOTHER)]},
        {"roll_number": "2", "name": "Ravi", "guardians": [guardian(MOTHER), guardian(FATHER, relation="father", name="Ramesh")]},
        {"roll_number": "3", "name": "Meena", "guardians": [{"name": "Lata", "relation": "mother"}]},
        {"roll_number": "4", "name": "Kiran", "guardians": [guardian(OPTED_OUT, opted_out=True)]},
    ]}).get_json()["students"]
    dev = client.post(f"/api/v1/classes/{class_b}/students", headers=h, json={"students": [
        {"roll_number": "1", "name": "Dev", "guardians": [guardian(AUNT, language="en", relation="other", name="Anita")]}]})
    far = client.post(f"/api/v1/classes/{other}/students", headers=h, json={"students": [
        {"roll_number": "1", "name": "Far", "parent_phone": "+919800000009"}]})
    assert dev.status_code == far.status_code == 200
    ids = {s["name"]: s["id"] for s in students}
    ids["Dev"] = dev.get_json()["students"][0]["id"]
    ids["Far"] = far.get_json()["students"][0]["id"]
    return {"class_a": class_a, "class_b": class_b, "other_class": other, "students": ids}


def make_template(client, key, template=HOLIDAY, expect=201) -> dict:
    resp = client.post("/api/v1/sms-templates", json=template, headers=auth(key))
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def announce(client, key, body, expect=202) -> dict:
    resp = client.post("/api/v1/announcements", json=body, headers=auth(key))
    assert resp.status_code == expect, resp.get_json()
    return resp.get_json()


def send_all(conn_url, path) -> None:
    with connect(conn_url, autocommit=True) as c:
        fan_out_due(c)
    dispatch(lambda: connect(conn_url), FileProvider(path), settings=fast("file"), wait_for_retries=False)


def sent_lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def progress(client, key, announcement_id) -> dict:
    resp = client.get(f"/api/v1/announcements/{announcement_id}", headers=auth(key))
    assert resp.status_code == 200
    return resp.get_json()


def students_table_count(conn, table: str) -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


# --- segments in SQL agree with Python -------------------------------------------------------------------------

def test_sql_segment_counting_agrees_with_python(conn):
    rng = random.Random(18)
    alphabet = "abc XYZ 019 {}[]~^|\\€ @£ ñ" + "नमस्ते अभिभावक" + "😀"
    bodies = ["", "a", "a" * 160, "a" * 161, "€" * 80, "€" * 81, "a" * 152 + "€", "a" * 153 + "€" * 2,
              "न" * 70, "न" * 71, "न" * 66 + "😀", "😀" * 35, "😀" * 36, "`", "\n\r\f"]
    bodies += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 400))) for _ in range(300)]
    bodies += ["".join(rng.choice("ab€{") for _ in range(rng.randint(150, 330))) for _ in range(100)]
    rows = conn.execute("SELECT b, sms_encoding(b) AS encoding, sms_segments(b) AS segments FROM unnest(%s::text[]) b",
                        (bodies,)).fetchall()
    for row in rows:
        expected = count_segments(row["b"])
        assert (row["encoding"], row["segments"]) == (expected.encoding, expected.count), row["b"]


# --- templates ---------------------------------------------------------------------------------------------------

def test_templates_check_placeholders_per_kind_and_dlt_when_the_policy_requires_it(client, admin_key, collector_key,
                                                                                    other_org_admin_key, conn):
    h = auth(admin_key)
    created = make_template(client, admin_key)
    assert created["bodies"]["hi"].startswith("प्रिय") and created["kind"] == "holiday"
    bad = client.post("/api/v1/sms-templates", headers=h, json={
        "name": "typo", "kind": "holiday", "bodies": {"hi": "{schol} बंद", "en": "closed {date}"}})
    assert bad.status_code == 422
    assert [(e["field"], e["code"]) for e in bad.get_json()["errors"]] == [("bodies.hi", "unknown_placeholder")]
    # {subject} belongs to exams and homework, not holidays; a stray brace is no placeholder
    for body in ("{subject} holiday", "closed {", "closed {Date}"):
        resp = client.post("/api/v1/sms-templates", headers=h, json={"name": "x", "kind": "holiday", "bodies": {"en": body}})
        assert resp.status_code == 422, body
    custom = make_template(client, admin_key, {"name": "camp", "kind": "custom", "placeholders": ["venue"],
                                               "bodies": {"en": "Health camp at {venue} for {student}"}})
    assert custom["placeholders"] == ["venue"]
    assert client.post("/api/v1/sms-templates", json={**HOLIDAY, "name": "x"}, headers=auth(collector_key)).status_code == 403
    assert client.post("/api/v1/sms-templates", json=HOLIDAY, headers=h).status_code == 409
    # the policy turns DLT registration on: a template without the ids is refused, with them accepted
    assert client.patch("/api/v1/sms-policy", json={"dlt_required": True}, headers=h).status_code == 200
    refused = client.post("/api/v1/sms-templates", json={**HOLIDAY, "name": "unregistered"}, headers=h)
    assert refused.status_code == 422
    assert {e["field"] for e in refused.get_json()["errors"]} == {"dlt_template_id", "sender_id"}
    make_template(client, admin_key, {**HOLIDAY, "name": "registered", "dlt_template_id": "1107161234567890123",
                                      "sender_id": "FLDPIP"})
    # PATCH re-checks the whole template
    patched = client.patch(f"/api/v1/sms-templates/{custom['id']}", json={"bodies": {"en": "At {venue} on {date}"}}, headers=h)
    assert patched.status_code == 422
    assert client.get(f"/api/v1/sms-templates/{created['id']}", headers=auth(other_org_admin_key)).status_code == 404
    assert students_table_count(conn, "sms_templates") == 3


# Python's `$` also matches before a final newline: each of these was once stored with the "\n" (or sent to the provider)
@pytest.mark.parametrize("path, body, field", [
    ("/api/v1/sms-policy", {"sender_id": "FLDPIP\n"}, "sender_id"),
    ("/api/v1/sms-policy", {"quiet_hours": {"start": "21:00\n", "end": "07:00"}}, "quiet_hours.start"),
    ("/api/v1/sms-templates", {**HOLIDAY, "name": "nl", "sender_id": "FLDPIP\n"}, "sender_id"),
    ("/api/v1/sms-templates", {**HOLIDAY, "name": "nl", "dlt_template_id": "1107161234567890123\n"}, "dlt_template_id"),
    ("/api/v1/sms-templates", {**HOLIDAY, "name": "nl", "bodies": {"hi\n": "{school} closed on {date}"}}, "bodies.hi\n"),
    ("/api/v1/sms-templates", {"name": "nl", "kind": "custom", "placeholders": ["venue\n"],
                               "bodies": {"en": "Camp at {venue}"}}, "placeholders"),
])
def test_a_trailing_newline_is_not_part_of_a_code(client, admin_key, conn, path, body, field):
    h = auth(admin_key)
    send = client.patch if path.endswith("policy") else client.post
    resp = send(path, json=body, headers=h)
    assert resp.status_code == 422, resp.get_json()
    assert field in [e["field"] for e in resp.get_json()["errors"]]
    assert students_table_count(conn, "sms_templates") == 0
    assert client.get("/api/v1/sms-policy", headers=h).get_json()["sender_id"] is None


# --- announcements -----------------------------------------------------------------------------------------------

def test_a_class_announcement_reaches_each_guardian_phone_once_in_their_language(client, admin_key, roster, db_url,
                                                                                tmp_path, conn):
    template = make_template(client, admin_key)
    made = announce(client, admin_key, {"template_id": template["id"], "values": {"date": "15 अगस्त"},
                                        "audience": {"class_ids": [roster["class_a"], roster["class_b"]]}})
    # mother (Asha and Ravi), father, aunt to message; Kiran's opted-out guardian and Meena (no phone) skipped
    assert made["recipients"] == 5 and made["status"] == "scheduled"
    assert made["progress"]["resolved"] == 0  # resolved again when it is sent
    sent_file = tmp_path / "sent.jsonl"
    send_all(db_url, sent_file)
    lines = sent_lines(sent_file)
    assert Counter(line["to"] for line in lines) == Counter({MOTHER: 1, FATHER: 1, AUNT: 1})
    by_phone = {line["to"]: line["body"] for line in lines}
    assert by_phone[MOTHER] == "प्रिय अभिभावक, GPS Mashobra में 15 अगस्त को अवकाश रहेगा। छात्र: Asha, Ravi (5-A)"
    assert by_phone[FATHER].endswith("छात्र: Ravi (5-A)")
    assert by_phone[AUNT] == "Dear parent, GPS Mashobra is closed on 15 अगस्त. Student: Dev (5-B)"
    encodings = {r["recipient"]: (r["encoding"], r["segments"]) for r in conn.execute("SELECT * FROM sms_messages")}
    assert encodings[MOTHER] == ("UCS-2", count_segments(by_phone[MOTHER]).count) and encodings[MOTHER][1] == 2
    done = progress(client, admin_key, made["id"])
    assert done["status"] == "completed"
    assert done["progress"] == {"resolved": 5, "queued": 0, "sent": 3, "delivered": 0, "failed": 0, "unknown": 0,
                                "skipped": 2, "cancelled": 0, "percent": 100.0}
    skipped = client.get(f"/api/v1/announcements/{made['id']}/recipients?status=skipped", headers=auth(admin_key)).get_json()
    assert {(r["reason"], tuple(r["student_ids"])) for r in skipped["items"]} == {
        ("opted_out", (roster["students"]["Kiran"],)), ("no_phone", (roster["students"]["Meena"],))}
    # a rerun of the fan-out and of the dispatcher sends nobody anything again
    conn.execute("UPDATE announcements SET status = 'scheduled'")
    send_all(db_url, sent_file)
    assert len(sent_lines(sent_file)) == 3


def test_bad_announcements_are_refused_and_store_nothing(client, admin_key, collector_key, roster, conn):
    template = make_template(client, admin_key)
    good = {"template_id": template["id"], "values": {"date": "15 August"}, "audience": {"class_ids": [roster["class_a"]]}}
    past = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()
    meena_only = {"student_ids": [roster["students"]["Meena"], roster["students"]["Kiran"]]}
    for body, field, code in (
            ({**good, "send_at": past}, "send_at", "past"),
            ({**good, "audience": meena_only}, "audience", "empty"),
            ({**good, "audience": {"district": "Nowhere"}}, "audience", "empty"),
            ({**good, "audience": {"class_ids": [99999]}}, "audience.class_ids", "unknown"),
            ({**good, "audience": {"school": UDISE, "district": "Shimla"}}, "audience", "one_of"),
            ({**good, "audience": {"school": UDISE + "\n"}}, "audience.school", "pattern"),
            ({**good, "values": {}}, "values.date", "required"),
            ({**good, "values": {"date": "x", "venue": "y"}}, "values.venue", "unknown"),
            ({**good, "values": {"date": "{student}"}}, "values.date", "character"),
            ({**good, "template_id": 999}, "template_id", "unknown")):
        resp = client.post("/api/v1/announcements", json=body, headers=auth(admin_key))
        assert resp.status_code == 422, body
        assert (field, code) in [(e["field"], e["code"]) for e in resp.get_json()["errors"]], resp.get_json()
    # a teacher (collector) key announces to classes and students, not to a whole school
    school_wide = client.post("/api/v1/announcements", json={**good, "audience": {"school": UDISE}},
                              headers=auth(collector_key))
    assert school_wide.status_code == 403
    assert students_table_count(conn, "announcements") == 0
    assert announce(client, collector_key, good)["recipients"] == 4


def test_block_and_district_audiences_and_another_organization(client, admin_key, other_org_admin_key, roster):
    template = make_template(client, admin_key)
    values = {"date": "1 Jan"}
    theog = announce(client, admin_key, {"template_id": template["id"], "values": values, "audience": {"block": "Theog"}})
    assert theog["recipients"] == 1  # Far, reached through the parent_phone the import made a guardian
    district = announce(client, admin_key, {"template_id": template["id"], "values": values,
                                            "audience": {"district": "Shimla"}})
    assert district["recipients"] == 6
    other = client.post("/api/v1/announcements", json={"template_id": template["id"], "values": values,
                                                       "audience": {"district": "Shimla"}}, headers=auth(other_org_admin_key))
    assert other.status_code == 422
    assert client.get(f"/api/v1/announcements/{theog['id']}", headers=auth(other_org_admin_key)).status_code == 404


def test_killing_the_dispatcher_mid_announcement_and_rerunning_messages_nobody_twice(client, admin_key, db_url,
                                                                                     tmp_path, conn):
    h = auth(admin_key)
    client.post("/api/v1/schools", json={"udise": UDISE, "name": "GPS", "district": "D", "block": "B"}, headers=h)
    class_id = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 1}, headers=h).get_json()["id"]
    count = 300
    client.patch("/api/v1/sms-policy", json={"approval_threshold": 1000}, headers=h)
    students = [{"roll_number": str(i), "name": f"S{i}", "guardians": [guardian(f"+91990{i:07d}")]} for i in range(count)]
    assert client.post(f"/api/v1/classes/{class_id}/students", json={"students": students}, headers=h).status_code == 200
    made = announce(client, admin_key, {"template_id": make_template(client, admin_key)["id"],
                                        "values": {"date": "2 Oct"}, "audience": {"class_ids": [class_id]}})
    fan_out_due(conn)
    sent_file = tmp_path / "sms" / "sent.jsonl"
    # its claims' lease ends at once, so the rerun settles them (the file says which were sent)
    proc = _dispatch_in_subprocess(db_url, tmp_path, "file", {"FIELDPIPE_SMS_RATE_FILE": "400",
                                                              "FIELDPIPE_SMS_LEASE_S": "0"})
    _kill_when(proc, lambda: sent_file.exists() and len(sent_file.read_bytes().splitlines()) >= 60)
    assert progress(client, admin_key, made["id"])["progress"]["sent"] < count
    fan_out_due(conn)  # nothing is due again
    conn.execute("UPDATE announcements SET status = 'scheduled'")
    fan_out_due(conn)  # a rerun of the whole fan-out adds nothing either
    dispatch(lambda: connect(db_url), FileProvider(sent_file), settings=fast("file"))
    phones = Counter(line["to"] for line in sent_lines(sent_file))
    assert len(phones) == count and max(phones.values()) == 1
    assert progress(client, admin_key, made["id"])["progress"]["sent"] == count


def test_cancel_stops_what_is_not_yet_sent(client, admin_key, collector_key, roster, db_url, tmp_path, conn):
    template = make_template(client, admin_key)
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)).isoformat()
    body = {"template_id": template["id"], "values": {"date": "2 Oct"}, "audience": {"class_ids": [roster["class_a"]]}}
    scheduled = announce(client, admin_key, {**body, "send_at": later})
    assert scheduled["status"] == "scheduled"
    # a teacher's key cancels only what it made itself
    assert client.post(f"/api/v1/announcements/{scheduled['id']}/cancel", headers=auth(collector_key)).status_code == 403
    cancelled = client.post(f"/api/v1/announcements/{scheduled['id']}/cancel", headers=auth(admin_key))
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    conn.execute("UPDATE announcements SET send_at = now() - interval '1 minute'")
    # fanned out, then cancelled before the dispatcher ran: its queued messages never go out
    mine = announce(client, collector_key, body)
    fan_out_due(conn)
    assert conn.execute("SELECT count(*) n FROM sms_messages WHERE status = 'queued'").fetchone()["n"] == 2
    stopped = client.post(f"/api/v1/announcements/{mine['id']}/cancel", headers=auth(collector_key)).get_json()
    assert stopped["status"] == "cancelled" and stopped["progress"]["cancelled"] == 2
    send_all(db_url, tmp_path / "sent.jsonl")
    assert sent_lines(tmp_path / "sent.jsonl") == []
    again = client.post(f"/api/v1/announcements/{mine['id']}/cancel", headers=auth(admin_key))
    assert again.status_code == 200 and again.get_json()["progress"]["cancelled"] == 2
    # a completed announcement has nothing left to stop
    done = announce(client, admin_key, body)
    send_all(db_url, tmp_path / "sent.jsonl")
    assert client.post(f"/api/v1/announcements/{done['id']}/cancel", headers=auth(admin_key)).status_code == 409


def test_a_large_announcement_waits_for_a_second_admin(client, admin_key, collector_key, roster, db_url, tmp_path, conn):
    h = auth(admin_key)
    assert client.patch("/api/v1/sms-policy", json={"approval_threshold": 2}, headers=h).get_json()["approval_threshold"] == 2
    template = make_template(client, admin_key)
    body = {"template_id": template["id"], "values": {"date": "2 Oct"}}
    small = announce(client, admin_key, {**body, "audience": {"class_ids": [roster["class_a"]]}})  # 2 messages
    assert small["status"] == "scheduled"
    large = announce(client, admin_key, {**body, "audience": {"school": UDISE}})  # 3 messages
    assert large["status"] == "awaiting_approval"
    fan_out_due(conn)
    assert progress(client, admin_key, large["id"])["progress"]["resolved"] == 0
    url = f"/api/v1/announcements/{large['id']}/approve"
    same = client.post(url, headers=h)
    assert same.status_code == 403 and same.get_json()["code"] == "403.30"
    assert client.post(url, headers=auth(collector_key)).status_code == 403
    second_admin = _key(db_url, "acme", "admin")
    approved = client.post(url, headers=auth(second_admin))
    assert approved.status_code == 200 and approved.get_json()["status"] == "scheduled"
    assert approved.get_json()["approved_by"] not in (None, large["created_by"])
    assert client.post(url, headers=auth(second_admin)).status_code == 409
    send_all(db_url, tmp_path / "sent.jsonl")
    assert progress(client, admin_key, large["id"])["progress"]["percent"] == 100.0


def test_result_announcements_quote_each_childs_own_marks(client, admin_key, collector_key, roster, db_url, tmp_path):
    s = roster["students"]
    h = auth(admin_key)
    assessment = client.post("/api/v1/assessments", headers=h, json={
        "title": "Maths test", "type": "LO", "evaluation": "Marks", "outcome": "TSP",
        "items": [{"key": "LO1", "label": "Adds", "max_marks": 10}, {"key": "LO2", "label": "Clock", "max_marks": 5}],
        "grade_scale": [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": 50}, {"grade": "C", "min_percent": 0}],
        "pass_criterion": {"min_percent": 40}, "class_ids": [roster["class_a"]], "deadline": "2099-01-01T00:00:00+05:30"})
    assert assessment.status_code == 201, assessment.get_json()
    marks = {"submission_id": str(uuid.uuid4()), "class_id": roster["class_a"], "submitted_at": "2026-11-20T10:00:00+05:30",
             "collector": {"id": "teacher-1"}, "entries": [
                 {"student_id": s["Asha"], "is_present": True, "marks": {"LO1": 9, "LO2": 4}},
                 {"student_id": s["Ravi"], "is_present": True, "marks": {"LO1": 5, "LO2": 2.5}},
                 {"student_id": s["Kiran"], "is_present": False}]}
    posted = client.post(f"/api/v1/assessments/{assessment.get_json()['id']}/submissions/student", json=marks,
                         headers=auth(collector_key))
    assert posted.status_code == 201, posted.get_json()
    template = make_template(client, admin_key, RESULT)
    made = announce(client, admin_key, {"template_id": template["id"], "audience": {"class_ids": [roster["class_a"]]},
                                        "values": {"assessment_id": assessment.get_json()["id"]}})
    send_all(db_url, tmp_path / "sent.jsonl")
    bodies = sorted((line["to"], line["body"]) for line in sent_lines(tmp_path / "sent.jsonl"))
    assert bodies == [
        (MOTHER, "Asha (5-A) को Maths test में 13/15 अंक (86.7%), ग्रेड A"),
        (MOTHER, "Ravi (5-A) को Maths test में 7.5/15 अंक (50%), ग्रेड B"),
        (FATHER, "Ravi (5-A) को Maths test में 7.5/15 अंक (50%), ग्रेड B"),
    ]
    reasons = {tuple(r["student_ids"]): r["reason"] for r in client.get(
        f"/api/v1/announcements/{made['id']}/recipients?status=skipped", headers=h).get_json()["items"]}
    assert reasons == {(s["Meena"],): "no_phone", (s["Kiran"],): "opted_out"}
    missing = client.post("/api/v1/announcements", headers=h, json={
        "template_id": template["id"], "audience": {"class_ids": [roster["class_a"]]}, "values": {}})
    assert missing.status_code == 422


# --- quiet hours and the daily cap --------------------------------------------------------------------------------

def zone_where_local_hour_is(hour: int) -> str:
    """An Etc/GMT zone in which it is now `hour` o'clock (the clock moved, not the machine's)."""
    offset = (hour - dt.datetime.now(dt.timezone.utc).hour + 12) % 24 - 12  # -12..+11
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"


def test_quiet_hours_hold_announcements_until_morning_in_the_schools_time_zone(client, admin_key, roster, db_url,
                                                                             tmp_path, conn):
    night = zone_where_local_hour_is(23)
    started = dt.datetime.now(ZoneInfo(night))
    h = auth(admin_key)
    assert client.patch("/api/v1/sms-policy", json={"time_zone": night, "quiet_hours": {"start": "21:00", "end": "07:00"}},
                        headers=h).status_code == 200
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    enqueue(conn, [NewMessage("receipt:1", "receipt", org, "+919811111111", "Receipt: transactional, sent at night")])
    made = announce(client, admin_key, {"template_id": make_template(client, admin_key)["id"], "values": {"date": "x"},
                                        "audience": {"class_ids": [roster["class_a"]]}})
    send_all(db_url, tmp_path / "sent.jsonl")
    assert [line["kind"] for line in sent_lines(tmp_path / "sent.jsonl")] == ["receipt"]
    held = conn.execute("""SELECT next_attempt_at AT TIME ZONE %s AS local FROM sms_messages
                            WHERE kind = 'announcement'""", (night,)).fetchall()
    morning = dt.datetime.combine(started.date() + dt.timedelta(days=1), dt.time(7))
    assert [r["local"] for r in held] == [morning, morning]
    assert progress(client, admin_key, made["id"])["progress"]["queued"] == 2
    # morning comes (the school is in a zone where it is 10:00): they go out
    day = zone_where_local_hour_is(10)
    conn.execute("UPDATE schools SET time_zone = %s", (day,))
    conn.execute("UPDATE sms_messages SET next_attempt_at = now(), time_zone = %s WHERE kind = 'announcement'", (day,))
    send_all(db_url, tmp_path / "sent.jsonl")
    assert progress(client, admin_key, made["id"])["progress"]["sent"] == 2
    # the window itself, at given instants
    until = conn.execute("""SELECT sms_quiet_until('2026-11-30 22:30+05:30', 'Asia/Kolkata', '21:00', '07:00') AS a,
                                   sms_quiet_until('2026-11-30 06:59+05:30', 'Asia/Kolkata', '21:00', '07:00') AS b,
                                   sms_quiet_until('2026-11-30 07:00+05:30', 'Asia/Kolkata', '21:00', '07:00') AS c,
                                   sms_quiet_until('2026-11-30 13:00+05:30', 'Asia/Kolkata', '12:00', '14:00') AS d"""
                         ).fetchone()
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    assert until == {"a": dt.datetime(2026, 12, 1, 7, tzinfo=ist), "b": dt.datetime(2026, 11, 30, 7, tzinfo=ist),
                     "c": None, "d": dt.datetime(2026, 11, 30, 14, tzinfo=ist)}


def test_the_daily_cap_holds_a_recipients_further_announcements_until_tomorrow(client, admin_key, roster, db_url,
                                                                             tmp_path, conn):
    h = auth(admin_key)
    client.patch("/api/v1/sms-policy", json={"daily_cap": 1, "time_zone": "Asia/Kolkata"}, headers=h)
    template = make_template(client, admin_key)
    body = {"template_id": template["id"], "audience": {"student_ids": [roster["students"]["Ravi"]]}}
    first = announce(client, admin_key, {**body, "values": {"date": "1 Oct"}})
    second = announce(client, admin_key, {**body, "values": {"date": "2 Oct"}})
    send_all(db_url, tmp_path / "sent.jsonl")
    assert Counter(line["to"] for line in sent_lines(tmp_path / "sent.jsonl")) == Counter({MOTHER: 1, FATHER: 1})
    assert progress(client, admin_key, first["id"])["progress"]["sent"] == 2
    assert progress(client, admin_key, second["id"])["progress"]["queued"] == 2
    held = {r["next_attempt_at"] for r in conn.execute(
        "SELECT next_attempt_at AT TIME ZONE 'Asia/Kolkata' AS next_attempt_at FROM sms_messages WHERE status = 'queued'")}
    assert len(held) == 1 and next(iter(held)).time() == dt.time(0)


def test_students_imported_with_only_a_parent_phone_get_it_as_a_guardian(client, admin_key, roster, conn):
    far = conn.execute("SELECT name, relation, phone, language FROM guardians WHERE student_id = %s",
                       (roster["students"]["Far"],)).fetchall()
    assert far == [{"name": "Parent", "relation": "guardian", "phone": "+919800000009", "language": "hi"}]


# --- the DAG ---------------------------------------------------------------------------------------------------------

@pytest.mark.airflow
def test_the_announcements_dag_fans_out_due_announcements_and_reports_counts(client, admin_key, roster, run_dag, conn):
    made = announce(client, admin_key, {"template_id": make_template(client, admin_key)["id"], "values": {"date": "x"},
                                        "audience": {"school": UDISE}})
    run = run_dag("announcements")
    [ti] = run.get_task_instances()
    counts = ti.xcom_pull(task_ids="fan_out_due_announcements")
    assert (counts["announcements"], counts["resolved"], counts["skipped"], counts["enqueued"]) == (1, 5, 2, 3)
    assert counts["each"][0]["announcement_id"] == made["id"] and counts["each"][0]["batches"] == 1
    assert conn.execute("SELECT count(*) n FROM sms_messages WHERE status = 'queued'").fetchone()["n"] == 3


def test_the_demo_announcement_in_hindi_reaches_each_demo_guardian_once(client, admin_key, conn, db_url, tmp_path):
    from fieldpipe.dev.demo import load_demo
    from fieldpipe.dev.demo_announcements import GUARDIANS

    org = load_demo(conn)
    load_demo(conn)  # loading again makes no second announcement
    [made] = conn.execute("SELECT id FROM announcements WHERE organization_id = %s", (org,)).fetchall()
    send_all(db_url, tmp_path / "sent.jsonl")
    send_all(db_url, tmp_path / "sent.jsonl")
    lines = [line for line in sent_lines(tmp_path / "sent.jsonl") if line["kind"] == "announcement"]
    phones = {g["phone"] for gs in GUARDIANS.values() for g in gs if g["phone"] and not g.get("opted_out")}
    assert Counter(line["to"] for line in lines) == Counter(dict.fromkeys(phones, 1))
    hindi = next(line["body"] for line in lines if line["to"] == "+919816000201")
    assert hindi == ("प्रिय अभिभावक, GSSS Demo, Mashobra में 26 जनवरी (गणतंत्र दिवस) को अवकाश रहेगा। "
                     "छात्र: Asha Thakur, Ravi Negi, कक्षा 5-A")
    key = _key(db_url, "demo", "admin")
    body = progress(client, key, made["id"])
    assert body["status"] == "completed" and body["progress"]["percent"] == 100.0
    assert body["progress"]["sent"] == len(phones) and body["progress"]["skipped"] == 2


def test_quiet_hours_follow_each_schools_own_time_zone(client, admin_key, db_url, tmp_path, conn):
    h = auth(admin_key)
    night, day = zone_where_local_hour_is(23), zone_where_local_hour_is(11)
    assert client.patch("/api/v1/sms-policy", json={"time_zone": day, "quiet_hours": {"start": "21:00", "end": "07:00"}},
                        headers=h).status_code == 200
    made = client.post("/api/v1/schools", json={"udise": UDISE, "name": "Night school", "district": "D", "block": "B",
                                                "time_zone": night}, headers=h)
    assert made.status_code == 201 and made.get_json()["time_zone"] == night
    plain = client.post("/api/v1/schools", json={"udise": OTHER_UDISE, "name": "Day school", "district": "D", "block": "B"},
                        headers=h)
    assert plain.get_json()["time_zone"] is None  # the organization's
    bad = client.post("/api/v1/schools", json={"udise": "02010100103", "name": "X", "district": "D", "block": "B",
                                               "time_zone": "Mars/Olympus"}, headers=h)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "time_zone"
    for udise, phone in ((UDISE, MOTHER), (OTHER_UDISE, FATHER)):
        class_id = client.post(f"/api/v1/schools/{udise}/classes", json={"grade": 2}, headers=h).get_json()["id"]
        client.post(f"/api/v1/classes/{class_id}/students", headers=h,
                    json={"students": [{"roll_number": "1", "name": f"Child of {phone}", "guardians": [guardian(phone)]}]})
    announce(client, admin_key, {"template_id": make_template(client, admin_key)["id"], "values": {"date": "x"},
                                 "audience": {"district": "D"}})
    send_all(db_url, tmp_path / "sent.jsonl")
    assert [line["to"] for line in sent_lines(tmp_path / "sent.jsonl")] == [FATHER]  # the night school's waits
    held = conn.execute("SELECT recipient, time_zone FROM sms_messages WHERE status = 'queued'").fetchall()
    assert held == [{"recipient": MOTHER, "time_zone": night}]

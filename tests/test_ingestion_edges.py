"""Bad input at the door, value by value: the string number, the empty string, the unnormalised phone, and one
submission id twice in one batch. Each is posted through the API and judged by what a user sees: the status,
the errors naming the field, and what is (or is not) stored."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers import auth, submission

URL = "/api/v1/forms/household-survey/responses"
REQUIRED_CHOICES = [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "problems", "label": "Problems", "type": "multi_choice", "required": True,
     "choices": ["leak", "dry"]},
    {"key": "visits", "label": "Visits", "type": "integer"},
    {"key": "depth", "label": "Depth", "type": "decimal"},
    {"key": "working", "label": "Working", "type": "boolean"},
    {"key": "visited_on", "label": "Visited on", "type": "date"},
    {"key": "contact", "label": "Contact", "type": "phone"},
]


def stored(conn) -> list[dict]:
    return conn.execute("SELECT submission_id, answers, collector_phone FROM responses ORDER BY id").fetchall()


def errors_of(resp) -> dict[str, str]:
    assert resp.status_code == 422, resp.get_json()
    assert resp.mimetype == "application/problem+json"
    return {e["field"]: e["code"] for e in resp.get_json()["errors"]}


@pytest.fixture
def survey(make_form):
    make_form()


@pytest.mark.parametrize("value", ["12", "12.0", 12.5, True, False, [12], {"n": 12}])
def test_an_integer_question_takes_only_a_json_integer(client, conn, collector_key, survey, value):
    resp = client.post(URL, json=submission(answers={"name": "Asha", "city": "pune", "monthly_income": value}),
                       headers=auth(collector_key))
    assert errors_of(resp) == {"answers.monthly_income": "type"}
    assert stored(conn) == []


@pytest.mark.parametrize("value, kept", [(12, 12), (0, 0), (-3, -3), (10**15, 10**15)])
def test_an_integer_is_stored_as_sent(client, conn, collector_key, survey, value, kept):
    resp = client.post(URL, json=submission(answers={"name": "Asha", "city": "pune", "monthly_income": value}),
                       headers=auth(collector_key))
    assert resp.status_code == 201 and resp.get_json()["answers"]["monthly_income"] == kept
    assert stored(conn)[0]["answers"]["monthly_income"] == kept


@pytest.mark.parametrize("key, value, code", [
    ("depth", "1.5", "type"), ("depth", True, "type"), ("working", "true", "type"), ("working", 1, "type"),
    ("visited_on", "2026-02-30", "date"), ("visited_on", "2026-1-05", "date"), ("visited_on", 20260105, "date"),
    ("contact", 919876543210, "type"), ("contact", "98765", "phone"), ("contact", "+91 12345", "phone"),
    ("problems", "leak", "type"), ("problems", ["leak", "flood"], "choice"), ("problems", ["dry", "dry"], "duplicate"),
])
def test_each_question_type_rejects_a_value_of_the_wrong_shape(client, conn, collector_key, make_form, key, value, code):
    make_form(slug="water", questions=REQUIRED_CHOICES)
    answers = {"name": "Asha", "problems": ["leak"], key: value}
    resp = client.post("/api/v1/forms/water/responses", json=submission(answers=answers), headers=auth(collector_key))
    assert errors_of(resp) == {f"answers.{key}": code}
    assert stored(conn) == []


@pytest.mark.parametrize("answers, field", [
    ({"name": "", "problems": ["leak"]}, "answers.name"),
    ({"name": None, "problems": ["leak"]}, "answers.name"),
    ({"problems": ["leak"]}, "answers.name"),
    ({"name": "Asha", "problems": []}, "answers.problems"),
    ({"name": "Asha"}, "answers.problems"),
])
def test_an_empty_answer_never_satisfies_a_required_question(client, conn, collector_key, make_form, answers, field):
    make_form(slug="water", questions=REQUIRED_CHOICES)
    resp = client.post("/api/v1/forms/water/responses", json=submission(answers=answers), headers=auth(collector_key))
    assert errors_of(resp) == {field: "required"}
    assert stored(conn) == []


def test_an_empty_optional_answer_is_accepted_and_not_stored(client, conn, collector_key, make_form):
    make_form(slug="water", questions=REQUIRED_CHOICES)
    answers = {"name": "Asha", "problems": ["dry"], "visits": None, "contact": "", "visited_on": ""}
    resp = client.post("/api/v1/forms/water/responses", json=submission(answers=answers), headers=auth(collector_key))
    assert resp.status_code == 201
    assert stored(conn)[0]["answers"] == {"name": "Asha", "problems": ["dry"]}


@pytest.mark.parametrize("sent", ["+91 98765 43210", "+91-98765-43210", "+91 (987) 654-3210", "+919876543210"])
def test_phones_are_stored_normalised_to_e164(client, conn, collector_key, survey, sent):
    body = submission(answers={"name": "Asha", "city": "pune", "phone": sent},
                      collector={"id": "enum-7", "phone": sent.replace("98765", "98123")})
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["answers"]["phone"] == "+919876543210"
    [row] = stored(conn)
    assert row["answers"]["phone"] == "+919876543210"
    assert row["collector_phone"] == "+91" + sent.replace("98765", "98123")[3:].translate(str.maketrans("", "", " -()"))


def test_a_phone_differently_written_is_a_duplicate_not_a_conflict(client, collector_key, survey):
    first = submission(answers={"name": "Asha", "city": "pune", "phone": "+919876543210"})
    again = {**first, "answers": {**first["answers"], "phone": "+91 98765 43210"}}
    assert client.post(URL, json=first, headers=auth(collector_key)).status_code == 201
    assert client.post(URL, json=again, headers=auth(collector_key)).status_code == 200


def test_one_id_twice_in_a_batch_with_different_answers_is_a_conflict_not_a_silent_drop(client, conn, collector_key,
                                                                                         survey):
    sid = str(uuid.uuid4())
    first = submission(submission_id=sid, answers={"name": "Asha", "city": "pune"})
    changed = submission(submission_id=sid, answers={"name": "Asha", "city": "nagpur"})
    same = submission(submission_id=sid, answers={"name": "Asha", "city": "pune"})
    resp = client.post(f"{URL}/batch", json={"items": [first, changed, same]}, headers=auth(collector_key))
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["status"] for r in body["results"]] == ["created", "conflict", "duplicate"]
    assert body["summary"] == {"created": 1, "duplicate": 1, "conflict": 1, "invalid": 0}
    assert [r["submission_id"] for r in body["results"]] == [sid, sid, sid]
    [row] = stored(conn)
    assert row["answers"]["city"] == "pune"
    assert client.get(f"{URL}/{sid}/revisions", headers=auth(collector_key)).get_json()["items"][0]["answers"]["city"] == "pune"


def test_of_ids_sent_twice_in_a_large_batch_the_first_answers_are_stored(client, conn, collector_key, survey):
    """Hundreds of twins: the insert sorts by id to lock rows in one order, and a sort that is not stable
    could store a twin's answers under the first's `created` result."""
    firsts = [submission(answers={"name": f"First {n}", "city": "pune"}) for n in range(300)]
    twins = [{**first, "answers": {"name": f"Twin {n}", "city": "nagpur"}} for n, first in enumerate(firsts)]
    resp = client.post(f"{URL}/batch", json={"items": firsts + twins}, headers=auth(collector_key))
    assert resp.get_json()["summary"] == {"created": 300, "duplicate": 0, "conflict": 300, "invalid": 0}
    assert [r["answers"]["name"] for r in stored(conn)] == [f"First {n}" for n in range(300)]
    revisions = conn.execute("SELECT answers ->> 'name' AS name FROM response_revisions ORDER BY response_id").fetchall()
    assert [r["name"] for r in revisions] == [f"First {n}" for n in range(300)]


def test_an_id_already_stored_with_other_answers_is_409_and_keeps_the_first(client, conn, collector_key, survey):
    first = submission(answers={"name": "Asha", "city": "pune"})
    assert client.post(URL, json=first, headers=auth(collector_key)).status_code == 201
    resp = client.post(URL, json={**first, "answers": {"name": "Asha", "city": "shimla"}}, headers=auth(collector_key))
    assert resp.status_code == 409 and resp.get_json()["code"] == "409.1"
    in_batch = client.post(f"{URL}/batch", headers=auth(collector_key),
                           json={"items": [{**first, "answers": {"name": "Asha", "city": "shimla"}}, first]}).get_json()
    assert [r["status"] for r in in_batch["results"]] == ["conflict", "duplicate"]
    assert [r["answers"]["city"] for r in stored(conn)] == ["pune"]

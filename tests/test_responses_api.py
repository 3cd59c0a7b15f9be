"""Posting, reading, searching and editing responses, as a field app and an analyst would."""

import uuid
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import auth, submission

URL = "/api/v1/forms/household-survey/responses"


def count_rows(conn, table="responses"):
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


@pytest.fixture
def form(make_form):
    return make_form()


def test_post_stores_once_and_a_retry_is_a_duplicate(client, form, collector_key, conn):
    body = submission()
    first = client.post(URL, json=body, headers=auth(collector_key))
    assert first.status_code == 201
    assert first.headers["Location"] == f"{URL}/{body['submission_id']}"
    again = client.post(URL, json=body, headers=auth(collector_key))
    assert again.status_code == 200
    assert again.get_json()["submission_id"] == body["submission_id"]
    assert again.get_json()["answers"] == first.get_json()["answers"]
    assert count_rows(conn) == 1 and count_rows(conn, "response_revisions") == 1


def test_same_id_with_different_answers_is_a_conflict(client, form, collector_key, conn):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    body["answers"]["monthly_income"] = 99999
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 409
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == "409.1"
    stored = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key)).get_json()
    assert stored["answers"]["monthly_income"] == 20000


def test_concurrent_identical_posts_leave_one_row(app, form, collector_key, conn):
    body = submission()

    def post(_):
        return app.test_client().post(URL, json=body, headers=auth(collector_key)).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(post, range(16)))
    assert sorted(set(statuses)) == [200, 201]
    assert statuses.count(201) == 1
    assert count_rows(conn) == 1


def test_invalid_answers_get_one_error_per_field_and_store_nothing(client, form, collector_key, conn):
    body = submission(answers={"name": 42, "city": "mumbai", "phone": "12345", "monthly_income": "lots",
                               "monthly_savings": 1.5, "favourite_colour": "red"})
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    errors = {e["field"]: e["code"] for e in resp.get_json()["errors"]}
    assert errors == {
        "answers.favourite_colour": "unknown_question",
        "answers.name": "type",
        "answers.city": "choice",
        "answers.phone": "phone",
        "answers.monthly_income": "type",
        "answers.monthly_savings": "type",
    }
    assert count_rows(conn) == 0


def test_missing_required_answers_and_bad_envelope(client, form, collector_key, conn):
    body = submission(submission_id="not-a-uuid", submitted_at="yesterday", collector={"phone": "+91"},
                      answers={"local_word": "jal"})
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 422
    fields = {e["field"] for e in resp.get_json()["errors"]}
    assert {"submission_id", "submitted_at", "collector.id", "answers.name", "answers.city"} <= fields
    assert count_rows(conn) == 0


@pytest.mark.parametrize("value,valid", [("+919876543210", True), ("+14155552671", True), ("9876543210", False),
                                         ("+91 98765", False), ("+999123456789", False)])
def test_phone_answers_must_be_valid_e164(client, form, collector_key, value, valid):
    body = submission()
    body["answers"]["phone"] = value
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == (201 if valid else 422), resp.get_json()


def test_local_language_text_round_trips(client, form, collector_key):
    body = submission()
    body["answers"]["local_word"] = "पानी, जल — नीर"
    body["answers"]["name"] = "आशा देवी"
    client.post(URL, json=body, headers=auth(collector_key))
    resp = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key))
    assert resp.get_json()["answers"]["local_word"] == "पानी, जल — नीर"
    assert "आशा देवी".encode() in resp.data, "text is sent as UTF-8, not \\u escapes"


def test_batch_judges_each_item_on_its_own(client, form, collector_key, conn):
    existing = submission()
    client.post(URL, json=existing, headers=auth(collector_key))
    conflicting = {**existing, "answers": {**existing["answers"], "monthly_savings": 1}}
    fresh = submission()
    items = [fresh, existing, conflicting, submission(answers={"name": "x"}), fresh]
    resp = client.post(f"{URL}/batch", json={"items": items}, headers=auth(collector_key))
    assert resp.status_code == 200
    body = resp.get_json()
    assert [r["status"] for r in body["results"]] == ["created", "duplicate", "conflict", "invalid", "duplicate"]
    assert body["summary"] == {"created": 1, "duplicate": 2, "conflict": 1, "invalid": 1}
    assert body["results"][3]["errors"][0]["field"] == "answers.city"
    assert count_rows(conn) == 2


def test_batch_limit(client, form, collector_key, conn):
    resp = client.post(f"{URL}/batch", json={"items": [submission() for _ in range(1001)]}, headers=auth(collector_key))
    assert resp.status_code == 422
    assert count_rows(conn) == 0


def test_edit_makes_a_new_revision_and_keeps_history(client, form, collector_key, conn):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    edited_answers = {**body["answers"], "monthly_savings": 4000}
    resp = client.patch(f"{URL}/{body['submission_id']}", json={"answers": edited_answers}, headers=auth(collector_key))
    assert resp.status_code == 200
    assert resp.get_json()["revision"] == 2
    assert resp.get_json()["answers"]["monthly_savings"] == 4000
    same = client.patch(f"{URL}/{body['submission_id']}", json={"answers": edited_answers}, headers=auth(collector_key))
    assert same.get_json()["revision"] == 2, "re-sending the same edit makes no new revision"
    history = client.get(f"{URL}/{body['submission_id']}/revisions", headers=auth(collector_key)).get_json()["items"]
    assert [(r["revision"], r["answers"]["monthly_savings"]) for r in history] == [(1, 5000), (2, 4000)]
    # the original post retried after the edit is still recognised as the same submission
    assert client.post(URL, json=body, headers=auth(collector_key)).status_code == 200


def test_invalid_edit_changes_nothing(client, form, collector_key):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    resp = client.patch(f"{URL}/{body['submission_id']}", json={"answers": {"city": "atlantis"}}, headers=auth(collector_key))
    assert resp.status_code == 422
    stored = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key)).get_json()
    assert stored["revision"] == 1 and stored["answers"]["city"] == "pune"


def test_unknown_response_is_404(client, form, collector_key):
    unknown = str(uuid.uuid4())
    for resp, named in ((client.get(f"{URL}/{unknown}", headers=auth(collector_key)), unknown),
                        (client.get(f"{URL}/nope", headers=auth(collector_key)), "nope"),
                        (client.patch(f"{URL}/{unknown}", json={"answers": {}}, headers=auth(collector_key)), unknown)):
        assert resp.status_code == 404 and resp.get_json()["detail"] == f"response {named!r} was not found"


def test_a_created_response_answers_with_its_whole_record(client, form, collector_key):
    body = submission()
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 201
    created = resp.get_json()
    stored = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key)).get_json()
    record = ("submission_id", "form", "form_version", "revision", "collector", "submitted_at", "received_at",
              "updated_at", "answers")
    assert {k: created[k] for k in record} == {k: stored[k] for k in record}
    assert (created["form"], created["form_version"], created["revision"]) == ("household-survey", 1, 1)


def test_a_response_reads_back_with_every_field(client, form, collector_key):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    stored = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key)).get_json()
    assert {"submission_id", "form", "form_version", "revision", "collector", "submitted_at", "received_at",
            "updated_at", "answers"} <= set(stored)
    assert (stored["submission_id"], stored["form"], stored["form_version"], stored["revision"]) == (
        body["submission_id"], "household-survey", 1, 1)
    assert stored["collector"] == {"id": "enum-7", "phone": "+919812345678"}
    assert stored["answers"] == body["answers"]
    assert datetime.fromisoformat(stored["submitted_at"]) == datetime(2026, 11, 20, 4, 45, tzinfo=timezone.utc)


def test_revisions_keep_who_sent_each_one_and_page_oldest_first(client, form, collector_key):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    edit = {"answers": {**body["answers"], "monthly_savings": 4000}, "submitted_at": "2026-11-21T09:00:00+05:30",
            "collector": {"id": "supervisor-2", "phone": "+919811111111"}}
    assert client.patch(f"{URL}/{body['submission_id']}", json=edit, headers=auth(collector_key)).status_code == 200
    revisions, cursor = [], None
    while True:
        page = client.get(f"{URL}/{body['submission_id']}/revisions", headers=auth(collector_key),
                          query_string={"limit": 1, **({"cursor": cursor} if cursor else {})}).get_json()
        revisions += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r["revision"] for r in revisions] == [1, 2]
    first, second = revisions
    assert set(first) == {"revision", "form_version", "collector", "submitted_at", "created_at", "answers"}
    assert first["collector"] == {"id": "enum-7", "phone": "+919812345678"}
    assert second["collector"] == {"id": "supervisor-2", "phone": "+919811111111"}
    assert (first["form_version"], first["answers"]["monthly_savings"]) == (1, 5000)
    assert second["answers"]["monthly_savings"] == 4000
    assert datetime.fromisoformat(second["submitted_at"]) == datetime(2026, 11, 21, 3, 30, tzinfo=timezone.utc)


def test_an_edit_that_is_not_an_object_is_refused_saying_so(client, form, collector_key):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    resp = client.patch(f"{URL}/{body['submission_id']}", json=["answers"], headers=auth(collector_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "", "code": "type", "message": "must be a JSON object"}]


def test_a_missing_timestamp_is_required_saying_what_it_must_be(client, form, collector_key):
    body = submission()
    del body["submitted_at"]
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.get_json()["errors"] == [{"field": "submitted_at", "code": "required",
                                          "message": "must be an ISO 8601 timestamp with a time zone"}]


@pytest.mark.parametrize("override, error", [
    ({"submission_id": "not-a-uuid"},
     {"field": "submission_id", "code": "format", "message": "must be a UUID made on the device"}),
    ({"submitted_at": "2026-11-20T10:15:00"},
     {"field": "submitted_at", "code": "timezone",
      "message": "must carry a time zone offset, e.g. 2026-11-23T10:00:00+05:30"}),
    ({"collector": {"id": "e" * 201}},
     {"field": "collector.id", "code": "too_long", "message": "must be at most 200 characters"}),
    ({"form_version": 99}, {"field": "form_version", "code": "unknown", "message": "form version 99 does not exist"}),
    ({"submitted_at": "yesterday"},
     {"field": "submitted_at", "code": "format", "message": "must be an ISO 8601 timestamp with a time zone"}),
    ({"collector": {"id": "enum-7", "phone": "12"}},
     {"field": "collector.phone", "code": "phone",
      "message": "is not a phone number in E.164 form, e.g. +919876543210"}),
    ({"submitted_at": "1899-12-31T23:59:59+00:00"},
     {"field": "submitted_at", "code": "range", "message": "must fall between 1900-01-01T00:00:00+00:00 and "
                                                          "9999-12-30T23:59:59.999999+00:00 once converted to UTC"}),
])
def test_a_bad_envelope_is_refused_naming_the_field_and_the_reason(client, form, collector_key, conn, override, error):
    resp = client.post(URL, json=submission(**override), headers=auth(collector_key))
    assert resp.status_code == 422 and resp.get_json()["errors"] == [error]
    assert count_rows(conn) == 0


def test_a_batch_item_that_is_not_an_object_is_refused_saying_so_and_the_others_land(client, form, collector_key,
                                                                                    conn):
    good = submission()
    results = client.post(f"{URL}/batch", json={"items": [["answers"], good]}, headers=auth(collector_key)).get_json()
    assert [(r["status"], r.get("errors")) for r in results["results"]] == [
        ("invalid", [{"field": "", "code": "type", "message": "must be a JSON object"}]), ("created", None)]
    assert count_rows(conn) == 1


def test_an_invalid_batch_item_is_reported_under_its_submission_id(client, form, collector_key):
    bad = submission(answers={"name": "x"})
    [result] = client.post(f"{URL}/batch", json={"items": [bad]}, headers=auth(collector_key)).get_json()["results"]
    assert (result["status"], result["submission_id"]) == ("invalid", bad["submission_id"])


def test_an_app_still_on_the_previous_form_version_is_accepted_under_that_version(client, form, admin_key,
                                                                                collector_key):
    questions = [*form["questions"], {"key": "household_size", "label": "Household size", "type": "integer"}]
    assert client.patch("/api/v1/forms/household-survey", json={"questions": questions},
                        headers=auth(admin_key)).status_code == 200
    old = submission(form_version=1)
    resp = client.post(URL, json=old, headers=auth(collector_key))
    assert resp.status_code == 201, resp.get_json()
    assert client.get(f"{URL}/{old['submission_id']}", headers=auth(collector_key)).get_json()["form_version"] == 1


def test_an_edit_without_answers_keeps_the_answers(client, form, collector_key):
    body = submission()
    client.post(URL, json=body, headers=auth(collector_key))
    resp = client.patch(f"{URL}/{body['submission_id']}", json={"collector": {"id": "enum-7", "phone": "+919812345678"}},
                        headers=auth(collector_key))
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["answers"] == body["answers"] and resp.get_json()["revision"] == 1


def test_filtering_on_a_question_that_cannot_be_filtered_names_it(client, form, admin_key):
    resp = client.get(f"{URL}?answer.name=Asha", headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"] == [{"field": "answer.name", "code": "not_filterable",
                                          "message": "only choice and boolean questions can be filtered on"}]

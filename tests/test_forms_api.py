"""Forms through the API: creation, validation, versions, roles and tenancy."""

from tests.helpers import HOUSEHOLD_QUESTIONS, auth, submission


def test_create_get_and_list_forms(client, make_form, collector_key):
    created = make_form()
    assert created["version"] == 1
    assert [q["key"] for q in created["questions"]] == [q["key"] for q in HOUSEHOLD_QUESTIONS]
    got = client.get("/api/v1/forms/household-survey", headers=auth(collector_key))
    assert got.status_code == 200
    assert got.get_json()["questions"][2]["choices"][0] == {"value": "pune", "label": "Pune"}
    listed = client.get("/api/v1/forms", headers=auth(collector_key)).get_json()
    assert [f["slug"] for f in listed["items"]] == ["household-survey"]


def test_invalid_form_definition_lists_every_problem(client, admin_key):
    body = {"slug": "Bad Slug", "title": "", "questions": [
        {"key": "a", "type": "colour"},
        {"key": "a", "type": "single_choice"},
        {"key": "9x", "type": "text", "choices": ["x"]},
    ]}
    resp = client.post("/api/v1/forms", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"
    fields = {e["field"] for e in resp.get_json()["errors"]}
    assert {"slug", "title", "questions[0].type", "questions[1].key", "questions[1].choices",
            "questions[2].key", "questions[2].choices"} <= fields
    assert client.get("/api/v1/forms", headers=auth(admin_key)).get_json()["items"] == []


def test_duplicate_slug_is_a_conflict(client, make_form, admin_key):
    make_form()
    resp = client.post("/api/v1/forms", json={"slug": "household-survey", "title": "Again",
                                              "questions": HOUSEHOLD_QUESTIONS}, headers=auth(admin_key))
    assert resp.status_code == 409
    assert resp.get_json()["code"] == "409.2"


def test_changed_questions_make_a_new_version_and_old_responses_keep_theirs(client, make_form, admin_key):
    make_form()
    first = client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(admin_key))
    assert first.get_json()["form_version"] == 1

    renamed = client.patch("/api/v1/forms/household-survey", json={"title": "Household survey 2026"}, headers=auth(admin_key))
    assert renamed.get_json()["version"] == 1, "a title change is not a new version"

    questions = HOUSEHOLD_QUESTIONS + [{"key": "household_size", "label": "People", "type": "integer", "required": True}]
    updated = client.patch("/api/v1/forms/household-survey", json={"questions": questions}, headers=auth(admin_key))
    assert updated.status_code == 200 and updated.get_json()["version"] == 2

    sid = first.get_json()["submission_id"]
    assert client.get(f"/api/v1/forms/household-survey/responses/{sid}", headers=auth(admin_key)).get_json()["form_version"] == 1
    # a device still on version 1 can post against it; the current version now requires household_size
    old_device = client.post("/api/v1/forms/household-survey/responses", json=submission(form_version=1), headers=auth(admin_key))
    assert old_device.status_code == 201 and old_device.get_json()["form_version"] == 1
    current = client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(admin_key))
    assert current.status_code == 422
    assert [e["field"] for e in current.get_json()["errors"]] == ["answers.household_size"]


def test_collector_cannot_create_or_change_forms(client, make_form, collector_key):
    make_form()
    resp = client.post("/api/v1/forms", json={"slug": "x", "title": "X", "questions": HOUSEHOLD_QUESTIONS},
                       headers=auth(collector_key))
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    assert client.patch("/api/v1/forms/household-survey", json={"title": "Y"}, headers=auth(collector_key)).status_code == 403


def test_another_organization_sees_nothing(client, make_form, other_org_admin_key):
    make_form()
    assert client.get("/api/v1/forms/household-survey", headers=auth(other_org_admin_key)).status_code == 404
    assert client.get("/api/v1/forms", headers=auth(other_org_admin_key)).get_json()["items"] == []
    posted = client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(other_org_admin_key))
    assert posted.status_code == 404


def test_receipt_settings_must_name_a_phone_question(client, admin_key):
    body = {"slug": "s", "title": "S", "questions": HOUSEHOLD_QUESTIONS,
            "settings": {"sms_receipt": {"phone_question": "city", "template": "Thanks {name}"}}}
    resp = client.post("/api/v1/forms", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "settings.sms_receipt.phone_question"


def test_sheet_settings_must_name_a_spreadsheet(client, admin_key):
    body = {"slug": "s", "title": "S", "questions": HOUSEHOLD_QUESTIONS, "settings": {"sheet": {"worksheet": "R"}}}
    resp = client.post("/api/v1/forms", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "settings.sheet.spreadsheet_id"

"""Form definitions at the door (create and update), with the exact errors an admin sees, what a valid
definition is normalised to, and what an update changes (a version only when the questions change)."""

from __future__ import annotations

import pytest

from fieldpipe.domains import TEXT_RULE
from tests.helpers import HOUSEHOLD_QUESTIONS, auth

Q = {"key": "name", "label": "Name", "type": "text"}


def errors(resp) -> list[tuple[str, str, str]]:
    assert resp.status_code == 422, resp.get_json()
    return [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]]


def create(client, key, **body):
    return client.post("/api/v1/forms", json={"slug": "f", "title": "F", "questions": [Q], **body}, headers=auth(key))


@pytest.mark.parametrize("body, expected", [
    ({"slug": "-x"}, [("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]),
    ({"slug": "a" * 64}, [("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]),
    ({"slug": 5}, [("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]),
    ({"slug": "water\n"}, [("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]),  # `$` passes a final newline
    ({"title": "  "}, [("title", "required", "is required")]),
    ({"title": None}, [("title", "required", "is required")]),
    ({"questions": []}, [("questions", "required", "must be a non-empty list of questions")]),
    ({"questions": {"key": "a"}}, [("questions", "required", "must be a non-empty list of questions")]),
    ({"questions": ["name"]}, [("questions[0]", "type", "must be an object")]),
    ({"questions": [{**Q, "questions": [{"key": "age", "label": "Age", "type": "integer"}]}]},
     [("questions[0].questions", "not_allowed", "only a repeat has questions of its own")]),
    ({"questions": [{**Q, "colour": "red"}]}, [("questions[0].colour", "unknown_field", "is not a question field")]),
    ({"questions": [{**Q, "key": "Name"}]}, [("questions[0].key", "pattern", "must match ^[a-z][a-z0-9_]{0,62}$")]),
    ({"questions": [{**Q, "key": "n" * 64}]}, [("questions[0].key", "pattern", "must match ^[a-z][a-z0-9_]{0,62}$")]),
    ({"questions": [{**Q, "key": "name\n"}]}, [("questions[0].key", "pattern", "must match ^[a-z][a-z0-9_]{0,62}$")]),
    ({"questions": [Q, {**Q, "type": "integer"}]}, [("questions[1].key", "duplicate", "key 'name' is used twice")]),
    ({"questions": [{**Q, "type": "colour"}]}, [("questions[0].type", "enum",
                                                 "must be one of text, long_text, integer, decimal, single_choice, "
                                                 "multi_choice, phone, date, boolean, email, datetime, time, geopoint, geotrace, "
                                                 "geoshape, image, audio, video, file, repeat")]),
    ({"questions": [{**Q, "label": ""}]}, [("questions[0].label", "type", "must be a non-empty string")]),
    ({"questions": [{**Q, "label": 3}]}, [("questions[0].label", "type", "must be a non-empty string")]),
    ({"questions": [{**Q, "required": "yes"}]}, [("questions[0].required", "type", "must be true or false")]),
    ({"questions": [{**Q, "mask": 1}]}, [("questions[0].mask", "enum", "must be true, false or one of partial, hash, drop")]),
    ({"questions": [{**Q, "mask": "partial"}]}, [("questions[0].mask", "not_allowed", "partial masking is for phone and email questions")]),
    ({"questions": [{**Q, "type": "single_choice"}]}, [("questions[0].choices", "required",
                                                        "a choice question needs choices")]),
    ({"questions": [{**Q, "type": "multi_choice", "choices": []}]}, [("questions[0].choices", "required",
                                                                      "a choice question needs choices")]),
    ({"questions": [{**Q, "type": "single_choice", "choices": ["a", "a"]}]}, [
        ("questions[0].choices", "invalid", "choice values must be unique non-empty strings")]),
    ({"questions": [{**Q, "type": "single_choice", "choices": ["a", ""]}]}, [
        ("questions[0].choices", "invalid", "choice values must be unique non-empty strings")]),
    ({"questions": [{**Q, "type": "single_choice", "choices": [{"label": "A"}]}]}, [
        ("questions[0].choices", "invalid", "choice values must be unique non-empty strings")]),
    ({"questions": [{**Q, "choices": ["a"]}]}, [("questions[0].choices", "not_allowed",
                                                 "only choice questions have choices")]),
    ({"settings": []}, [("settings", "type", "must be an object")]),
    ({"settings": {"sms_receipt": {"phone_question": "name", "template": "Hi"}}}, [
        ("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form")]),
    ({"settings": {"sms_receipt": {"phone_question": "nope", "template": ""}}}, [
        ("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form"),
        ("settings.sms_receipt.template", "required", "must be a non-empty template")]),
    ({"settings": {"sms_receipt": "phone"}}, [
        ("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form"),
        ("settings.sms_receipt.template", "required", "must be a non-empty template")]),
    ({"settings": {"sheet": {}}}, [("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet")]),
    ({"settings": {"sheet": "abc"}}, [("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet")]),
    ({"settings": {"sheet": {"spreadsheet_id": "abc", "worksheet": ""}}}, [
        ("settings.sheet.worksheet", "type", "must be a worksheet title")]),
    ({"settings": {"sheet": {"spreadsheet_id": "abc", "worksheet": 3}}}, [
        ("settings.sheet.worksheet", "type", "must be a worksheet title")]),
    ({"settings": {"imports": {"receipts": "yes"}}}, [("settings.imports.receipts", "type", "must be true or false")]),
    ({"settings": {"imports": "off"}}, [("settings.imports.receipts", "type", "must be true or false")]),
    ({"title": "T" * 501}, [("title", "too_long", "must be at most 500 characters")]),
    ({"title": "Water\x07"}, [("title", "character", "contains U+0007; send " + TEXT_RULE)]),
    ({"questions": [{**Q, "label": "L" * 501}]}, [("questions[0].label", "too_long", "must be at most 500 characters")]),
    ({"questions": [{**Q, "label": "Name\x00"}]}, [("questions[0].label", "character", "contains U+0000; send " + TEXT_RULE)]),
])
def test_a_bad_definition_gets_exactly_its_errors_and_stores_nothing(client, admin_key, body, expected):
    resp = create(client, admin_key, **body)
    assert errors(resp) == expected
    assert resp.get_json()["detail"] == f"{len(expected)} field(s) failed validation"
    assert client.get("/api/v1/forms", headers=auth(admin_key)).get_json()["items"] == []


def test_a_body_that_is_not_an_object_is_refused(client, admin_key, make_form):
    assert errors(client.post("/api/v1/forms", json=["f"], headers=auth(admin_key))) == [
        ("", "type", "must be a JSON object")]
    make_form()
    assert errors(client.patch("/api/v1/forms/household-survey", json="x", headers=auth(admin_key))) == [
        ("", "type", "must be a JSON object")]


def test_a_valid_definition_is_normalised(client, admin_key):
    resp = create(client, admin_key, slug="w" * 63, questions=[
        {"key": "n", "type": "text"},
        {"key": "c", "label": "Colour", "type": "single_choice", "choices": ["red", {"value": "blue", "label": "Blue"}],
         "required": True, "hint": "pick one"},
        {"key": "p", "label": "Phone", "type": "phone", "mask": True, "required": False},
        {"key": "q", "label": "Quiet", "type": "text", "mask": False, "hint": ""},
    ], settings={"sheet": {"spreadsheet_id": "abc"}})
    assert resp.status_code == 201, resp.get_json()
    assert resp.headers["Location"] == "/api/v1/forms/" + "w" * 63
    body = resp.get_json()
    assert body["questions"] == [
        {"key": "n", "label": "n", "type": "text", "required": False},
        {"key": "c", "label": "Colour", "type": "single_choice", "required": True,
         "choices": [{"value": "red", "label": "red"}, {"value": "blue", "label": "Blue"}], "hint": "pick one"},
        {"key": "p", "label": "Phone", "type": "phone", "required": False, "mask": True},
        {"key": "q", "label": "Quiet", "type": "text", "required": False},
    ]
    assert (body["version"], body["settings"], body["title"]) == (1, {"sheet": {"spreadsheet_id": "abc"}}, "F")
    assert client.get(f"/api/v1/forms/{'w' * 63}", headers=auth(admin_key)).get_json() == body


def test_forms_are_listed_by_slug_with_their_current_questions(client, admin_key, make_form):
    make_form(slug="zebra")
    make_form(slug="aardvark")
    client.patch("/api/v1/forms/zebra", json={"questions": [Q]}, headers=auth(admin_key))
    listed = client.get("/api/v1/forms", headers=auth(admin_key)).get_json()["items"]
    assert [(f["slug"], f["version"], len(f["questions"])) for f in listed] == [
        ("aardvark", 1, len(HOUSEHOLD_QUESTIONS)), ("zebra", 2, 1)]


def test_an_update_changes_only_what_it_names(client, admin_key, make_form):
    created = make_form()
    url = "/api/v1/forms/household-survey"
    settings = {"sms_receipt": {"phone_question": "phone", "template": "Thanks {name}"}}
    resp = client.patch(url, json={"settings": settings}, headers=auth(admin_key))
    assert resp.status_code == 200
    body = resp.get_json()
    assert (body["title"], body["version"], body["settings"], body["questions"]) == (
        created["title"], 1, settings, created["questions"])
    assert body["updated_at"] > created["updated_at"] and body["created_at"] == created["created_at"]
    same = client.patch(url, json={"questions": HOUSEHOLD_QUESTIONS, "title": "Renamed"}, headers=auth(admin_key))
    assert (same.get_json()["version"], same.get_json()["title"], same.get_json()["settings"]) == (1, "Renamed", settings)
    assert client.get(url, headers=auth(admin_key)).get_json()["title"] == "Renamed"


@pytest.mark.parametrize("body, expected", [
    ({"title": ""}, [("title", "required", "must be a non-empty string")]),
    ({"title": 5}, [("title", "required", "must be a non-empty string")]),
    ({"questions": []}, [("questions", "required", "must be a non-empty list of questions")]),
    ({"questions": [Q, Q], "title": " "}, [("questions[1].key", "duplicate", "key 'name' is used twice"),
                                          ("title", "required", "must be a non-empty string")]),
    ({"questions": [Q]}, [("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form")]),
    ({"settings": {"sheet": {"spreadsheet_id": ""}}}, [
        ("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet")]),
    ({"title": "T" * 501}, [("title", "too_long", "must be at most 500 characters")]),
    ({"title": "Water\x1b"}, [("title", "character", "contains U+001B; send " + TEXT_RULE)]),
])
def test_a_bad_update_gets_exactly_its_errors_and_changes_nothing(client, admin_key, make_form, body, expected):
    before = make_form(settings={"sms_receipt": {"phone_question": "phone", "template": "Thanks"}})
    url = "/api/v1/forms/household-survey"
    assert errors(client.patch(url, json=body, headers=auth(admin_key))) == expected
    assert client.get(url, headers=auth(admin_key)).get_json() == before


def test_unknown_forms_are_404_naming_the_form(client, admin_key):
    for resp in (client.get("/api/v1/forms/nope", headers=auth(admin_key)),
                 client.patch("/api/v1/forms/nope", json={"title": "x"}, headers=auth(admin_key)),
                 client.get("/api/v1/forms/nope/responses", headers=auth(admin_key))):
        assert resp.status_code == 404 and resp.get_json()["detail"] == "form 'nope' was not found"


def test_a_duplicate_slug_is_409_naming_it_and_keeps_the_first(client, admin_key, make_form):
    first = make_form()
    again = client.post("/api/v1/forms", json={"slug": "household-survey", "title": "Other", "questions": [Q]},
                        headers=auth(admin_key))
    assert again.status_code == 409 and again.get_json()["code"] == "409.2"
    assert again.get_json()["detail"] == "a form with slug 'household-survey' already exists"
    assert client.get("/api/v1/forms/household-survey", headers=auth(admin_key)).get_json() == first


def test_forms_page_through_by_slug_with_the_cursor(client, admin_key, make_form):
    for slug in ("delta", "alpha", "2026-census", "charlie", "bravo"):
        make_form(slug=slug)
    seen, cursor = [], None
    for _ in range(6):
        page = client.get("/api/v1/forms?limit=1" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auth(admin_key)).get_json()
        seen += [f["slug"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["2026-census", "alpha", "bravo", "charlie", "delta"]
    two = client.get("/api/v1/forms?limit=3", headers=auth(admin_key)).get_json()
    rest = client.get(f"/api/v1/forms?limit=3&cursor={two['next_cursor']}", headers=auth(admin_key)).get_json()
    assert [f["slug"] for f in rest["items"]] == ["charlie", "delta"] and rest["next_cursor"] is None

"""Every question type at the door, with the exact error a field app shows its user (field, code, message),
the boundary values that must still pass (the longest text, the longest email), and what is stored."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldpipe.domains import LONG_TEXT_MAX_LENGTH

from tests.helpers import auth, submission

QUESTIONS = [
    {"key": "name", "label": "Name", "type": "text", "required": True},
    {"key": "notes", "label": "Notes", "type": "long_text"},
    {"key": "visits", "label": "Visits", "type": "integer"},
    {"key": "depth", "label": "Depth", "type": "decimal"},
    {"key": "source", "label": "Source", "type": "single_choice", "choices": ["well", "tap"]},
    {"key": "problems", "label": "Problems", "type": "multi_choice", "choices": ["leak", "dry"]},
    {"key": "contact", "label": "Contact", "type": "phone"},
    {"key": "visited_on", "label": "Visited on", "type": "date"},
    {"key": "working", "label": "Working", "type": "boolean"},
    {"key": "email", "label": "Email", "type": "email"},
    {"key": "location", "label": "Location", "type": "geopoint"},
    {"key": "seen_at", "label": "Seen at", "type": "datetime"},
    {"key": "opens_at", "label": "Opens at", "type": "time"},
    {"key": "pipe", "label": "Pipe", "type": "geotrace"},
    {"key": "plot", "label": "Plot", "type": "geoshape"},
    {"key": "photo", "label": "Photo", "type": "image"},
]
POINT, OTHER_POINT, THIRD_POINT = ({"latitude": 31.1, "longitude": 77.2}, {"latitude": 31.2, "longitude": 77.2},
                                   {"latitude": 31.2, "longitude": 77.3})
TIMESTAMP_MESSAGE = "must be an ISO 8601 timestamp with a time zone"
TIME_MESSAGE = "must be a time of day HH:MM[:SS[.fff]] with an optional offset"
URL = "/api/v1/forms/water/responses"
EMAIL_320 = "a" * 64 + "@" + "b" * 251 + ".com"


@pytest.fixture
def water(make_form):
    make_form(slug="water", questions=QUESTIONS)


def post(client, key, answers):
    return client.post(URL, json=submission(answers={"name": "Asha", **answers}), headers=auth(key))


@pytest.mark.parametrize("answers, error", [
    ({"name": 7}, ("answers.name", "type", "must be a string")),
    ({"name": "x" * 1001}, ("answers.name", "too_long", "must be at most 1000 characters")),
    ({"notes": "x" * (LONG_TEXT_MAX_LENGTH + 1)},
     ("answers.notes", "too_long", f"must be at most {LONG_TEXT_MAX_LENGTH} characters")),
    ({"notes": ["x"]}, ("answers.notes", "type", "must be a string")),
    ({"visits": "3"}, ("answers.visits", "type", "must be an integer")),
    ({"visits": 3.0}, ("answers.visits", "type", "must be an integer")),
    ({"visits": True}, ("answers.visits", "type", "must be an integer")),
    ({"depth": "1.5"}, ("answers.depth", "type", "must be a number")),
    ({"depth": False}, ("answers.depth", "type", "must be a number")),
    ({"source": 1}, ("answers.source", "type", "must be one choice value (a string)")),
    ({"source": "river"}, ("answers.source", "choice", "'river' is not one of the offered choices")),
    ({"source": ["well"]}, ("answers.source", "type", "must be one choice value (a string)")),
    ({"problems": "leak"}, ("answers.problems", "type", "must be a list of choice values")),
    ({"problems": ["leak", 1]}, ("answers.problems", "type", "must be a list of choice values")),
    ({"problems": ["flood", "leak", "fire"]}, ("answers.problems", "choice", "'flood', 'fire' not among the offered choices")),
    ({"problems": ["dry", "dry"]}, ("answers.problems", "duplicate", "a choice is picked more than once")),
    ({"contact": 919876543210}, ("answers.contact", "type",
                                 "must be a phone number string in E.164 form, e.g. +919876543210")),
    ({"contact": "call me"}, ("answers.contact", "phone", "is not a phone number in E.164 form, e.g. +919876543210")),
    ({"contact": "+91 12345"}, ("answers.contact", "phone", "is not a valid phone number")),
    ({"visited_on": "2026-02-30"}, ("answers.visited_on", "date", "is not a real calendar date")),
    ({"visited_on": "30/01/2026"}, ("answers.visited_on", "date", "must be a date YYYY-MM-DD")),
    ({"visited_on": "2026-01-30T10:00"}, ("answers.visited_on", "date", "must be a date YYYY-MM-DD")),
    ({"visited_on": 20260130}, ("answers.visited_on", "date", "must be a date YYYY-MM-DD")),
    ({"working": "yes"}, ("answers.working", "type", "must be true or false")),
    ({"working": 0}, ("answers.working", "type", "must be true or false")),
    ({"email": "asha@example"}, ("answers.email", "email", "is not an email address")),
    ({"email": "asha @example.org"}, ("answers.email", "email", "is not an email address")),
    ({"email": "x" + EMAIL_320}, ("answers.email", "email", "is not an email address")),
    ({"email": 5}, ("answers.email", "email", "is not an email address")),
    ({"email": "asha@example.org\n"}, ("answers.email", "email", "is not an email address")),
    ({"colour": "red"}, ("answers.colour", "unknown_question", "is not a question of this form version")),
    ({"name": ""}, ("answers.name", "required", "is required")),
    ({"location": [31.1, 77.2]},
     ("answers.location", "geopoint", "must be an object with latitude, longitude, altitude and accuracy")),
    ({"location": {"latitude": "31.1", "longitude": 77.2}},
     ("answers.location", "geopoint", "latitude and longitude must be numbers")),
    ({"location": {"latitude": 90.5, "longitude": 77.2}},
     ("answers.location", "geopoint", "latitude must be within ±90 and longitude within ±180 degrees")),
    ({"location": {"latitude": 31.1, "longitude": 77.2, "altitude": "high"}},
     ("answers.location", "geopoint", "altitude must be a number")),
    ({"location": {"latitude": 31.1, "longitude": 77.2, "accuracy": -0.5}},
     ("answers.location", "geopoint", "accuracy cannot be negative")),
    ({"location": {"latitude": 31.1, "longitude": 77.2, "accuracy": "5 m"}},
     ("answers.location", "geopoint", "accuracy must be a number")),
    ({"location": {"latitude": 31.1, "longitude": 77.2, "speed": 3}},
     ("answers.location", "geopoint", "must be an object with latitude, longitude, altitude and accuracy")),
    ({"seen_at": 1764000000}, ("answers.seen_at", "datetime", TIMESTAMP_MESSAGE)),
    ({"seen_at": "yesterday"}, ("answers.seen_at", "datetime", TIMESTAMP_MESSAGE)),
    ({"seen_at": "2026-11-23T10:00:00"},
     ("answers.seen_at", "timezone", "must carry a time zone offset, e.g. 2026-11-23T10:00:00+05:30")),
    ({"seen_at": "0001-01-01T00:00:00+05:30"}, ("answers.seen_at", "range",
                                               "must fall between 1900-01-01T00:00:00+00:00 and "
                                               "9999-12-30T23:59:59.999999+00:00 once converted to UTC")),
    ({"opens_at": "24:00"}, ("answers.opens_at", "time", TIME_MESSAGE)),
    ({"opens_at": "09:30 am"}, ("answers.opens_at", "time", TIME_MESSAGE)),
    ({"opens_at": 930}, ("answers.opens_at", "time", TIME_MESSAGE)),
    ({"pipe": [POINT]}, ("answers.pipe", "geotrace", "must be a list of at least 2 points")),
    ({"pipe": POINT}, ("answers.pipe", "geotrace", "must be a list of at least 2 points")),
    ({"pipe": [POINT, {"latitude": 31.2}]}, ("answers.pipe", "geopoint", "latitude and longitude must be numbers")),
    ({"plot": [POINT, OTHER_POINT, POINT]}, ("answers.plot", "geoshape", "must be a list of at least 4 points")),
    ({"plot": [POINT, OTHER_POINT, THIRD_POINT, OTHER_POINT]},
     ("answers.plot", "geoshape", "must be closed: the last point repeats the first")),
    ({"plot": [POINT, OTHER_POINT, THIRD_POINT, {"latitude": 31.1, "longitude": 77.3}]},
     ("answers.plot", "geoshape", "must be closed: the last point repeats the first")),
    ({"photo": 7}, ("answers.photo", "type", "must be the attached file's name")),
    ({"photo": "  "}, ("answers.photo", "type", "must be the attached file's name")),
    ({"photo": "../well.jpg"}, ("answers.photo", "attachment_name", "a file name cannot contain path separators")),
    ({"photo": "dcim\\well.jpg"}, ("answers.photo", "attachment_name", "a file name cannot contain path separators")),
    ({"photo": ".."}, ("answers.photo", "attachment_name", "a file name cannot contain path separators")),
    ({"photo": "x" * 252 + ".jpg"}, ("answers.photo", "too_long", "must be at most 255 characters")),
])
def test_each_bad_answer_gets_its_field_code_and_message(client, conn, collector_key, water, answers, error):
    resp = post(client, collector_key, answers)
    assert resp.status_code == 422, resp.get_json()
    assert [tuple(e.values()) for e in resp.get_json()["errors"]] == [error]
    assert resp.get_json()["detail"] == "1 field(s) failed validation"
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 0


def test_answers_must_be_an_object(client, collector_key, water):
    resp = client.post(URL, json=submission(answers=["Asha"]), headers=auth(collector_key))
    assert [tuple(e.values()) for e in resp.get_json()["errors"]] == [
        ("answers", "type", "must be an object of question key to answer")]


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_a_decimal_that_is_not_a_finite_number_is_refused(client, collector_key, water, raw):
    body = json.dumps(submission(answers={"name": "Asha", "depth": 0})).replace('"depth": 0', f'"depth": {raw}')
    resp = client.post(URL, data=body, content_type="application/json", headers=auth(collector_key))
    assert resp.status_code == 422
    assert [tuple(e.values()) for e in resp.get_json()["errors"]] == [("answers.depth", "type", "must be a number")]


def test_values_at_the_limits_are_stored_as_normalised(client, conn, collector_key, water):
    answers = {"name": "x" * 1000, "notes": "e\u0301" * 10, "visits": 0, "depth": -2.5, "source": "tap",
               "problems": ["dry", "leak"], "contact": "+91 98765 43210", "visited_on": "2024-02-29",
               "working": False, "email": EMAIL_320}
    resp = post(client, collector_key, answers)
    assert resp.status_code == 201, resp.get_json()
    stored = conn.execute("SELECT answers FROM responses").fetchone()["answers"]
    assert stored == {**answers, "notes": "\u00e9" * 10, "contact": "+919876543210"}
    assert resp.get_json()["answers"] == stored


def test_a_long_text_answer_may_be_as_long_as_its_limit_a_text_answer_may_not(client, conn, collector_key, water):
    resp = post(client, collector_key, {"notes": "x" * LONG_TEXT_MAX_LENGTH})
    assert resp.status_code == 201, resp.get_json()
    assert len(conn.execute("SELECT answers->>'notes' AS notes FROM responses").fetchone()["notes"]) == LONG_TEXT_MAX_LENGTH
    refused = post(client, collector_key, {"name": "x" * 1001})
    assert [tuple(e.values()) for e in refused.get_json()["errors"]] == [
        ("answers.name", "too_long", "must be at most 1000 characters")]


def test_times_traces_shapes_and_file_names_are_stored_as_normalised(client, conn, collector_key, water):
    plot = [POINT, OTHER_POINT, {**THIRD_POINT, "altitude": 2100, "accuracy": 0}, POINT]
    answers = {"seen_at": "2026-11-23T10:00Z", "opens_at": "23:59:59.5+05:30", "pipe": [POINT, OTHER_POINT],
               "plot": plot, "photo": "we\u0301ll " + "x" * 245 + ".jpg"}
    resp = post(client, collector_key, answers)
    assert resp.status_code == 201, resp.get_json()
    stored = conn.execute("SELECT answers FROM responses").fetchone()["answers"]
    full = [{"altitude": None, "accuracy": None, **point} for point in plot]
    assert stored == {"name": "Asha", "seen_at": "2026-11-23T10:00:00+00:00", "opens_at": "23:59:59.5+05:30",
                      "pipe": full[:2], "plot": full, "photo": "w\u00e9ll " + "x" * 245 + ".jpg"}


def test_several_bad_answers_are_all_reported_in_question_order(client, collector_key, water):
    resp = client.post(URL, json=submission(answers={"zz": 1, "working": "no", "visits": "1", "name": ""}),
                       headers=auth(collector_key))
    assert [e["field"] for e in resp.get_json()["errors"]] == [
        "answers.zz", "answers.name", "answers.visits", "answers.working"]
    assert resp.get_json()["detail"] == "4 field(s) failed validation"


def test_the_same_answers_in_another_key_order_are_a_duplicate(client, collector_key, water):
    body = submission(answers={"name": "Asha", "visits": 2, "problems": ["leak"]})
    assert client.post(URL, json=body, headers=auth(collector_key)).status_code == 201
    reordered = {**body, "answers": {"problems": ["leak"], "visits": 2, "name": "Asha"}}
    assert client.post(URL, json=reordered, headers=auth(collector_key)).status_code == 200
    changed = {**body, "answers": {"name": "Asha", "visits": 3, "problems": ["leak"]}}
    assert client.post(URL, json=changed, headers=auth(collector_key)).status_code == 409


def test_text_answers_are_searchable_by_word_and_other_types_are_not(client, collector_key, water):
    post(client, collector_key, {"name": "Asha Devi", "notes": "पानी नहीं, well-dry!", "source": "well"})
    post(client, collector_key, {"name": "Ravi", "notes": "fine", "source": "tap"})

    def found(q):
        items = client.get(f"{URL}?q={q}", headers=auth(collector_key)).get_json()["items"]
        return sorted(i["answers"]["name"] for i in items)

    assert found("asha") == ["Asha Devi"]
    assert found("पानी") == ["Asha Devi"]
    assert found("DRY") == ["Asha Devi"]
    assert found("devi asha") == ["Asha Devi"]
    assert found("tap") == []          # a choice answer is not text
    assert found("asha ravi") == []


def test_the_content_hash_is_a_known_answer():
    """Hashes are stored: a change of the canonical form would turn every retry of an older submission into
    a conflict. sha256 of the keys sorted, no spaces, UTF-8 as is."""
    import hashlib

    from fieldpipe.answers import content_hash

    canonical = '{"a":"पानी","b":[1,2],"c":{"d":null}}'
    assert content_hash({"c": {"d": None}, "b": [1, 2], "a": "पानी"}) == hashlib.sha256(canonical.encode()).hexdigest()


FLOAT_FREE = [{"key": "name", "type": "text"}, {"key": "visits", "type": "integer"},
              {"key": "working", "type": "boolean"},
              {"key": "problems", "type": "multi_choice", "choices": ["leak", "dry"]},
              {"key": "members", "type": "repeat", "questions": [{"key": "who", "type": "text"}]}]
CHECKED_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)  # no lone surrogates once checked
FLOAT_FREE_ANSWERS = st.fixed_dictionaries({}, optional={
    "name": CHECKED_TEXT, "visits": st.integers(-(2**53 - 1), 2**53 - 1), "working": st.booleans(),
    "problems": st.lists(CHECKED_TEXT, max_size=3),
    "members": st.lists(st.dictionaries(CHECKED_TEXT, CHECKED_TEXT | st.integers(-(2**53 - 1), 2**53 - 1),
                                        max_size=3), max_size=3)})


@settings(max_examples=300, deadline=None)
@given(FLOAT_FREE_ANSWERS)
def test_a_form_without_decimals_hashes_its_answers_as_the_canonical_json_does(answers):
    """The checker hashes answers without floats with msgspec: it must give the stored hash to the bit."""
    from fieldpipe.answers import AnswersChecker, content_hash
    from fieldpipe.forms import check_questions

    checker = AnswersChecker(check_questions(FLOAT_FREE)[0])
    assert checker.float_free
    assert checker.hash(answers) == content_hash(answers)


@pytest.mark.parametrize("depth", [1e-05, -3.03e-05, 5e-324, 0.1, 123456789.125, 0.0, -0.0, 999999999999999.9])
def test_a_form_with_decimals_hashes_floats_as_the_canonical_json_does(depth):
    """msgspec writes 1e-05 as 0.00001: a form with decimal or geo questions keeps the json module's hash."""
    from fieldpipe.answers import AnswersChecker, content_hash
    from fieldpipe.forms import check_questions

    for questions in ([*FLOAT_FREE, {"key": "depth", "type": "decimal"}],
                      [{"key": "r", "type": "repeat", "questions": [{"key": "at", "type": "geopoint"}]}]):
        checker = AnswersChecker(check_questions(questions)[0])
        assert not checker.float_free
        answers = {"name": "Asha", "depth": depth, "r": [{"at": {"latitude": depth, "longitude": 1.0}}]}
        assert checker.hash(answers) == content_hash(answers)


def test_a_retry_after_the_questions_were_reordered_is_still_a_duplicate(client, admin_key, collector_key, water):
    body = submission(answers={"name": "Asha", "visits": 2, "working": True})
    assert client.post(URL, json=body, headers=auth(collector_key)).status_code == 201
    reordered = list(reversed(QUESTIONS))
    assert client.patch("/api/v1/forms/water", json={"questions": reordered}, headers=auth(admin_key)).get_json()[
        "version"] == 2
    again = client.post(URL, json=body, headers=auth(collector_key))
    assert again.status_code == 200, again.get_json()

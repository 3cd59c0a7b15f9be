"""What follows a submission works for OpenRosa ones as for JSON: rules and flags, SMS receipts."""

from __future__ import annotations

import json

import openpyxl
import pytest

from fieldpipe.rules.validate import validate_slug
from tests.fakes.openrosa_client import CollectClient
from tests.helpers import auth, put_rules
from tests.openrosa_support import TUTORIAL, new_instance_id, tutorial_instance, upload_form

ADULT_RULES = """
rules:
  - id: adult-respondent
    expression: age >= 18
    message: "Respondent is {age}: interview an adult"
    severity: error
    notify: collector
"""


@pytest.fixture
def collect(live_api, collector_key, object_store):
    return CollectClient(f"{live_api}/openrosa/acme", username="tablet-3", password=collector_key)


def test_rules_flag_openrosa_submissions_and_an_edit_closes_the_flag(client, conn, admin_key, collector_key, collect):
    upload_form(client, admin_key, TUTORIAL / "tutorial_w_repeats.xls")
    put_rules(client, admin_key, "tutorial-w-repeats", ADULT_RULES)
    child = new_instance_id()
    assert collect.submit(tutorial_instance())[0].status_code == 201
    assert collect.submit(tutorial_instance(instanceID=child, age="15"))[0].status_code == 201
    [result] = validate_slug(conn, "tutorial-w-repeats")
    assert (result.checked, result.opened) == (2, 1)
    [flag] = client.get("/api/v1/forms/tutorial-w-repeats/flags", headers=auth(admin_key)).get_json()["items"]
    assert flag["submission_id"] == child[5:] and flag["message"] == "Respondent is 15: interview an adult"
    fixed = tutorial_instance(instanceID=new_instance_id(), age="19").replace(
        b"</instanceID>", f"</instanceID><deprecatedID>{child}</deprecatedID>".encode())
    assert collect.submit(fixed)[0].status_code == 201
    validate_slug(conn, "tutorial-w-repeats")
    assert client.get("/api/v1/forms/tutorial-w-repeats/flags", headers=auth(admin_key)).get_json()["items"] == []


def household_xlsform(path):
    """An XLSForm as a field team writes one: the respondent's phone is a text question (XLSForm has no phone type)."""
    book = openpyxl.Workbook()
    survey = book.active
    survey.title = "survey"
    for row in (["type", "name", "label"], ["text", "name", "Name"], ["text", "phone", "Phone"],
                ["integer", "members", "Household members"]):
        survey.append(row)
    settings = book.create_sheet("settings")
    settings.append(["form_id", "version"])
    settings.append(["household", "2026-11"])
    book.save(path)
    return path


def household_instance(phone: str) -> bytes:
    return (f'<data id="household" version="2026-11"><name>Asha</name><phone>{phone}</phone><members>4</members>'
            f"<meta><instanceID>{new_instance_id()}</instanceID></meta></data>").encode()


def test_receipts_go_to_a_text_phone_answer_once_and_only_when_it_is_a_number(client, conn, admin_key, collect, tmp_path):
    settings = {"sms_receipt": {"phone_question": "phone", "template": "Thanks {name}: {members} members recorded"}}
    answer = upload_form(client, admin_key, household_xlsform(tmp_path / "household.xlsx"), settings=json.dumps(settings))
    assert answer.status_code == 201, answer.get_json()
    good = household_instance("+919876543210")
    assert collect.submit(good)[0].status_code == 201
    assert collect.submit(good)[0].status_code == 201  # Collect retried: a duplicate, no second receipt
    assert collect.submit(household_instance("not a number"))[0].status_code == 201
    messages = conn.execute("SELECT recipient, body FROM sms_messages WHERE kind = 'receipt'").fetchall()
    assert [(m["recipient"], m["body"]) for m in messages] == [("+919876543210", "Thanks Asha: 4 members recorded")]


def test_json_settings_cannot_replace_an_xform_forms_questions(client, admin_key):
    upload_form(client, admin_key, TUTORIAL / "tutorial_w_repeats.xls")
    answer = client.patch("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key),
                        json={"questions": [{"key": "name", "type": "text"}]})
    assert answer.status_code == 422 and answer.get_json()["errors"][0]["field"] == "questions"
    assert client.patch("/api/v1/forms/tutorial-w-repeats", headers=auth(admin_key),
                      json={"title": "Tutorial"}).get_json()["title"] == "Tutorial"


def test_the_demo_has_an_xlsform_form_with_a_visit_posted_like_collect(conn):
    from fieldpipe.dev.demo import load_demo

    load_demo(conn)
    load_demo(conn)  # make up again: the same form, the visit a duplicate
    [row] = conn.execute("""SELECT r.answers, f.xform_id FROM responses r JOIN forms f ON f.id = r.form_id
                             WHERE f.slug = 'school-visit'""").fetchall()
    assert row["xform_id"] == "school_visit"
    assert [c["present"] for c in row["answers"]["classroom"]] == [27, 19]
    assert row["answers"]["school/location"]["latitude"] == 31.1048 and "attendance" not in row["answers"]["classroom"][0]
    receipts = conn.execute("SELECT recipient FROM sms_messages WHERE kind = 'receipt'").fetchall()
    assert [r["recipient"] for r in receipts].count("+919876500011") == 1  # the visit's; other demo forms have theirs

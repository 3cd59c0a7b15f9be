"""Validation end to end against the real PostgreSQL: warnings at ingestion, flags from the set-based run,
reruns, edits, superseded revisions, the watermark, and broken rules."""

import pytest

from fieldpipe.rules.store import ruleset_for
from fieldpipe.rules.validate import ValidationFailed, pending_work, validate_form, validate_slug
from tests.helpers import HOUSEHOLD_QUESTIONS, auth, put_rules, submission

SAVINGS_RULES = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
    severity: error
    notify: collector
  - id: name-without-digits
    expression: name matches "^[^0-9]+$"
    message: "Name '{name}' has digits, 100% sure"
    severity: warning
"""


@pytest.fixture
def rules_dir(client, admin_key):
    """Save a form's rules (as a rules file would say them) through the API."""

    def save(slug: str, text: str):
        return put_rules(client, admin_key, slug, text).get_json()

    return save


def post(client, key, **overrides):
    resp = client.post("/api/v1/forms/household-survey/responses", json=submission(**overrides), headers=auth(key))
    assert resp.status_code in (200, 201), resp.get_json()
    return resp.get_json()


def answers(**changes):
    base = {"name": "Asha", "city": "pune", "monthly_income": 20000, "monthly_savings": 5000}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def open_flags(client, key, slug="household-survey", status="open"):
    resp = client.get(f"/api/v1/forms/{slug}/flags?status={status}", headers=auth(key))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["items"]


def test_seed_case_warning_at_post_then_flag_after_the_run(client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    bad = post(client, collector_key, answers=answers(monthly_savings=30000))
    good = post(client, collector_key, answers=answers())

    assert bad["warnings"] == [{"rule_id": "savings-within-income", "severity": "error",
                                "message": "Savings 30000 exceed income 20000"}]
    assert good["warnings"] == []
    assert pending_work(conn) == [{"key": "household-survey", "name": "household-survey", "rows": 2, "gx": False}]

    [result] = validate_slug(conn, "household-survey")
    assert (result.checked, result.opened) == (2, 1)

    [flag] = open_flags(client, admin_key)
    assert (flag["submission_id"], flag["rule_id"], flag["message"], flag["notify"], flag["revision"]) == (
        bad["submission_id"], "savings-within-income", "Savings 30000 exceed income 20000", "collector", 1)
    shown = client.get(f"/api/v1/forms/household-survey/responses/{bad['submission_id']}", headers=auth(admin_key)).get_json()
    assert [f["rule_id"] for f in shown["flags"]] == ["savings-within-income"]
    assert client.get(f"/api/v1/forms/household-survey/responses/{good['submission_id']}",
                      headers=auth(admin_key)).get_json()["flags"] == []


def test_batch_post_carries_warnings_per_item_and_stores_every_item(client, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    items = [submission(answers=answers(name="R2D2")), submission(answers=answers()), {"answers": {}}]
    body = client.post("/api/v1/forms/household-survey/responses/batch", json={"items": items},
                       headers=auth(collector_key)).get_json()
    assert body["summary"]["created"] == 2
    assert body["results"][0]["warnings"] == [{"rule_id": "name-without-digits", "severity": "warning",
                                               "message": "Name 'R2D2' has digits, 100% sure"}]
    assert body["results"][1]["warnings"] == []
    assert "warnings" not in body["results"][2]


def test_rerun_gives_the_same_flags_even_when_everything_is_revalidated(client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    post(client, collector_key, answers=answers(monthly_savings=30000, name="R2D2"))
    validate_slug(conn, "household-survey")
    first = open_flags(client, admin_key)
    assert len(first) == 2 and {f["rules_version"] for f in first} == {1}

    [again] = validate_slug(conn, "household-survey")
    # a new version (here only a description changed) makes the next run validate every response again
    rules_dir("household-survey", SAVINGS_RULES.replace("    severity: warning", "    severity: warning\n    description: no digits"))
    [full] = validate_slug(conn, "household-survey")
    assert (again.opened, again.updated, full.revalidated_all, full.opened, full.updated) == (0, 0, True, 0, 0)
    assert open_flags(client, admin_key) == first


def test_edit_that_passes_closes_the_flag_and_an_edit_that_still_fails_supersedes_it(client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    fixed = post(client, collector_key, answers=answers(monthly_savings=30000))
    still_bad = post(client, collector_key, answers=answers(monthly_savings=30000))
    validate_slug(conn, "household-survey")
    assert len(open_flags(client, admin_key)) == 2

    put = client.patch(f"/api/v1/forms/household-survey/responses/{fixed['submission_id']}",
                     json={"answers": answers(monthly_savings=1000)}, headers=auth(collector_key))
    assert put.status_code == 200 and put.get_json()["warnings"] == []
    put = client.patch(f"/api/v1/forms/household-survey/responses/{still_bad['submission_id']}",
                     json={"answers": answers(monthly_savings=25000)}, headers=auth(collector_key))
    assert put.get_json()["warnings"][0]["message"] == "Savings 25000 exceed income 20000"
    validate_slug(conn, "household-survey")

    [now_open] = open_flags(client, admin_key)
    assert (now_open["submission_id"], now_open["revision"], now_open["message"]) == (
        still_bad["submission_id"], 2, "Savings 25000 exceed income 20000")
    closed = {(f["submission_id"], f["revision"]): f["close_reason"] for f in open_flags(client, admin_key, status="closed")}
    assert closed == {(fixed["submission_id"], 1): "passed", (still_bad["submission_id"], 1): "superseded"}


def test_empty_answers_are_not_evaluated_and_removed_rules_close_their_flags(client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    missing = post(client, collector_key, answers=answers(monthly_income=None, monthly_savings=30000))
    assert missing["warnings"] == []
    post(client, collector_key, answers=answers(monthly_savings=30000))
    [result] = validate_slug(conn, "household-survey")
    assert result.opened == 1

    rules_dir("household-survey", SAVINGS_RULES.split("  - id: name-without-digits")[0].replace(
        "savings-within-income", "savings-below-income"))
    validate_slug(conn, "household-survey")
    assert [f["rule_id"] for f in open_flags(client, admin_key)] == ["savings-below-income"]
    assert [f["close_reason"] for f in open_flags(client, admin_key, status="closed")] == ["rule_removed"]


def test_rules_that_no_longer_fit_the_questions_fail_their_form_naming_rule_and_reason_and_touch_nothing(
        client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    make_form(slug="water-point-audit")
    rules_dir("household-survey", """
        rules:
          - id: savings-vs-income
            expression: monthly_savings <= monthly_income
            message: "x"
    """)
    rules_dir("water-point-audit", """
        rules:
          - id: name-given
            expression: name is not empty
            message: "no name"
    """)
    post(client, collector_key, answers=answers(monthly_savings=30000))
    # the form loses a question its rules read: the stored rules no longer fit
    without_savings = [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "monthly_savings"]
    resp = client.patch("/api/v1/forms/household-survey", headers=auth(admin_key),
                      json={"title": "Household survey", "questions": without_savings, "settings": {}})
    assert resp.status_code == 200, resp.get_json()
    with pytest.raises(ValidationFailed) as failure:
        validate_slug(conn, "household-survey")
    message = str(failure.value)
    assert "acme/household-survey" in message and "savings-vs-income" in message
    assert "unknown answer key 'monthly_savings'" in message
    assert conn.execute("SELECT count(*) AS n FROM validation_watermarks").fetchone()["n"] == 0
    assert open_flags(client, admin_key) == []
    [other] = validate_slug(conn, "water-point-audit")  # the other form's validation runs on
    assert other.checked == 0


def test_rule_failing_at_run_time_is_broken_not_violated_by_everyone(client, conn, admin_key, collector_key, make_form, rules_dir):
    """The regex subset keeps PostgreSQL from rejecting a pattern; to see the safety net work, this test hands
    the run a rule whose compiled pattern PostgreSQL rejects (as an engine upgrade or a subset bug could)."""
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    post(client, collector_key, answers=answers(monthly_savings=30000, name="Asha"))
    form = conn.execute("""SELECT f.id, f.slug, f.rules_version, 'acme' AS organization, v.questions FROM forms f
                           JOIN form_versions v ON v.form_id = f.id""").fetchone()
    ruleset = ruleset_for(conn, form)
    ruleset.rules[1].tree.sql_pattern = "a{1,2"

    result = validate_form(conn, form, ruleset)
    assert list(result.broken) == ["name-without-digits"] and "regular expression" in result.broken["name-without-digits"]
    assert [f["rule_id"] for f in open_flags(client, admin_key)] == ["savings-within-income"]
    assert conn.execute("SELECT rules_fingerprint FROM validation_watermarks").fetchone()["rules_fingerprint"] == ""


def test_column_expectations_flag_the_responses_they_find_and_an_erroring_one_is_broken(
        client, conn, admin_key, collector_key, make_form, rules_dir, caplog):
    make_form()
    rules_dir("household-survey", """
        expectations:
          - id: income-in-range
            expectation: expect_column_values_to_be_between
            kwargs: {column: monthly_income, min_value: 0, max_value: 100000}
            message: "Income {monthly_income} is out of range"
          - id: name-is-a-word
            expectation: expect_column_values_to_match_regex
            kwargs: {column: name, regex: "^[A-Za-z]+$"}
            message: "Name {name} is not a word"
          - id: local-word-in-devanagari
            expectation: expect_column_values_to_match_regex
            kwargs: {column: local_word, regex: "^[^a-z]+$"}
            message: "never"
    """)
    rich = post(client, collector_key, answers=answers(monthly_income=900000, name="Ravi"))
    numbered = post(client, collector_key, answers=answers(name="Asha 2"))
    post(client, collector_key, answers=answers(local_word="पानी"))
    form = conn.execute("""SELECT f.id, f.slug, f.rules_version, 'acme' AS organization, v.questions FROM forms f
                           JOIN form_versions v ON v.form_id = f.id""").fetchone()
    ruleset = ruleset_for(conn, form)
    # the safety net, as in the test above: an expectation that errors at run time (the loader refuses this one)
    ruleset.expectations[2].kwargs["regex"] = "("
    caplog.set_level("DEBUG", logger="fieldpipe.rules.expectations")
    result = validate_form(conn, form, ruleset)
    assert {(f["submission_id"], f["rule_id"], f["message"]) for f in open_flags(client, admin_key)} == {
        (rich["submission_id"], "income-in-range", "Income 900000 is out of range"),
        (numbered["submission_id"], "name-is-a-word", "Name Asha 2 is not a word")}
    assert list(result.broken) == ["local-word-in-devanagari"]
    assert result.broken == {"local-word-in-devanagari": "Invalid regular expression: missing ): ("}
    assert "expectation income-in-range: 1 of 3 responses unexpected" in caplog.messages


def test_each_run_says_what_it_checked_and_what_it_opened_updated_and_closed(
        client, conn, admin_key, collector_key, make_form, rules_dir, caplog):
    caplog.set_level("INFO", logger="fieldpipe.rules.validate")
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    fixed = post(client, collector_key, answers=answers(monthly_savings=30000))
    post(client, collector_key, answers=answers(monthly_savings=30000, name="R2D2"))
    post(client, collector_key, answers=answers())
    [first] = validate_slug(conn, "household-survey")
    assert caplog.messages[-1] == first.summary() == (
        "form acme/household-survey: checked 3 all responses (rules changed); flags opened 3, updated 0, closed 0 ")
    client.patch(f"/api/v1/forms/household-survey/responses/{fixed['submission_id']}",
                 json={"answers": answers(monthly_savings=1000)}, headers=auth(collector_key))
    [second] = validate_slug(conn, "household-survey")
    # the run looks again at the last 2 minutes (the revisit window), so all three are checked, as new or edited
    assert caplog.messages[-1] == (
        "form acme/household-survey: checked 3 new or edited responses; flags opened 0, updated 0, closed 1 "
        "{'passed': 1}")
    assert (second.opened, second.updated, second.closed, second.revalidated_all) == (0, 0, {"passed": 1}, False)
    [third] = validate_slug(conn, "household-survey")
    assert (third.opened, third.updated, third.closed) == (0, 0, {})  # checked again, nothing changes


@pytest.mark.parametrize("exception_info,error", [
    (None, None),
    ({"raised_exception": False, "exception_message": None}, None),
    ({"raised_exception": True, "exception_message": "bad regex"}, "bad regex"),
    ({"raised_exception": True, "exception_message": ""}, "the expectation raised an error"),
    ({"('column_values.match_regex', 'x')": {"raised_exception": False},
      "('column_values.nonnull', 'y')": {"raised_exception": True, "exception_message": "no column"}}, "no column"),
    ({"('m', 'x')": {"raised_exception": True}}, "the expectation raised an error"),
    ({"('m', 'x')": "raised"}, None),
])
def test_an_expectations_error_is_read_from_gx_exception_info_flat_or_by_metric(exception_info, error):
    """GX Core reports an erroring expectation as a failure whose `exception_info` is flat or keyed by metric;
    the broken rule's error is the first raised exception's message."""
    from fieldpipe.rules.expectations import _error

    assert _error(exception_info) == error


def test_a_rule_broken_at_run_time_fails_the_run_naming_it_after_the_other_forms_were_validated(
        client, conn, admin_key, collector_key, make_form, rules_dir, monkeypatch):
    """As in the test above, the run is handed a compiled pattern PostgreSQL rejects; here through the slug's run,
    which must end failed, naming the form, the rule and the reason, and record the failure."""
    from fieldpipe.rules import validate

    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    post(client, collector_key, answers=answers(monthly_savings=30000))
    loaded = validate.ruleset_for

    def with_a_broken_pattern(conn, form):
        ruleset = loaded(conn, form)
        ruleset.rules[1].tree.sql_pattern = "a{1,2"
        return ruleset

    monkeypatch.setattr(validate, "ruleset_for", with_a_broken_pattern)
    with pytest.raises(ValidationFailed) as failed:
        validate_slug(conn, "household-survey")
    assert str(failed.value).startswith("form acme/household-survey: checked 1 all responses (rules changed); "
                                        "flags opened 1, updated 0, closed 0 ; broken rules: name-without-digits: "
                                        "fails in PostgreSQL: invalid regular expression")
    [recorded] = conn.execute("SELECT error, reason FROM pipeline_failures WHERE pipeline = 'validate_responses'")
    assert recorded["error"] == "RuleFailed" and "broken rules: name-without-digits" in recorded["reason"]
    assert [f["rule_id"] for f in open_flags(client, admin_key)] == ["savings-within-income"]


def test_a_form_whose_rules_were_removed_is_validated_once_then_left_alone(
        client, conn, admin_key, collector_key, make_form, rules_dir):
    make_form()
    rules_dir("household-survey", SAVINGS_RULES)
    post(client, collector_key, answers=answers(monthly_savings=30000))
    # an hour passes: the response is older than the run's revisit window
    conn.execute("UPDATE responses SET received_at = received_at - interval '1 hour', "
                 "updated_at = updated_at - interval '1 hour'")
    validate_slug(conn, "household-survey")
    assert pending_work(conn) == []
    tasks = client.get("/api/v1/forms/household-survey/tasks", headers=auth(admin_key)).get_json()["items"]
    [rules_task] = [t for t in tasks if t["kind"] == "rules"]
    assert client.delete(f"/api/v1/forms/household-survey/tasks/{rules_task['id']}",
                         headers=auth(admin_key)).status_code == 204
    assert pending_work(conn) == [{"key": "household-survey", "name": "household-survey", "rows": 1, "gx": False}]
    [run] = validate_slug(conn, "household-survey")
    assert run.closed == {"rule_removed": 1} and run.revalidated_all
    assert conn.execute("SELECT rules_fingerprint FROM validation_watermarks").fetchone()["rules_fingerprint"] == "none"
    assert pending_work(conn) == []  # nothing new: not validated again and again

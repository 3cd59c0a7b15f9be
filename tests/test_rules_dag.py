"""The `validate_responses` DAG end to end (dag.test, real PostgreSQL, GX Core): affected form slugs in a few
mapped groups; expression rules and column expectations flag; rules that no longer fit fail only their own
form, also inside a group shared with healthy forms."""

import pytest

from tests.helpers import HOUSEHOLD_QUESTIONS, auth, put_rules, submission


@pytest.mark.airflow
def test_dag_flags_rule_and_expectation_violations_and_broken_rules_fail_only_their_form(
        client, conn, admin_key, collector_key, make_form, run_dag):
    from airflow.utils.state import TaskInstanceState

    make_form()
    make_form(slug="water-point-audit")
    put_rules(client, admin_key, "household-survey", """
        rules:
          - id: savings-within-income
            expression: monthly_savings <= monthly_income
            message: "Savings {monthly_savings} exceed income {monthly_income}"
            notify: collector
        expectations:
          - id: income-in-range
            expectation: expect_column_values_to_be_between
            kwargs: {column: monthly_income, min_value: 0, max_value: 100000}
            message: "Income {monthly_income} is out of range"
            severity: warning
    """)
    put_rules(client, admin_key, "water-point-audit", "rules:\n  - {id: local-word, expression: local_word != 'x', message: x}\n")
    # the form then drops the question its rule reads: its stored rules no longer fit
    client.patch("/api/v1/forms/water-point-audit", headers=auth(admin_key), json={
        "title": "Water", "questions": [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "local_word"], "settings": {}})
    headers = auth(collector_key)
    overspent = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 20000, "monthly_savings": 30000})
    rich = submission(answers={"name": "Ravi", "city": "pune", "monthly_income": 900000, "monthly_savings": 1000})
    for body in (overspent, rich):
        assert client.post("/api/v1/forms/household-survey/responses", json=body, headers=headers).status_code == 201
    client.post("/api/v1/forms/water-point-audit/responses", json=submission(), headers=headers)

    run = run_dag("validate_responses", expect="failed")

    # little work: both forms share one group, whose task fails after the healthy form was validated
    [group] = [ti for ti in run.get_task_instances() if ti.task_id == "validate_group"]
    assert group.state == TaskInstanceState.FAILED
    failed = client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"]
    assert [(f["pipeline"], f["form"], f["error"]) for f in failed] == [
        ("validate_responses", "water-point-audit", "RulesBroken")]
    flags = client.get("/api/v1/forms/household-survey/flags", headers=auth(admin_key)).get_json()["items"]
    assert {(f["submission_id"], f["rule_id"], f["message"]) for f in flags} == {
        (overspent["submission_id"], "savings-within-income", "Savings 30000 exceed income 20000"),
        (rich["submission_id"], "income-in-range", "Income 900000 is out of range"),
    }
    assert client.get("/api/v1/forms/water-point-audit/flags", headers=auth(admin_key)).get_json()["items"] == []

"""The `validate_responses` DAG end to end (dag.test, real PostgreSQL, GX Core): one mapped task per affected
form slug; expression rules and column expectations flag; a broken rules file fails only its own form."""

import textwrap

import pytest

from tests.helpers import auth, submission


@pytest.mark.airflow
def test_dag_flags_rule_and_expectation_violations_and_a_broken_file_fails_only_its_form(
        client, conn, admin_key, collector_key, make_form, run_dag, tmp_path, monkeypatch):
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("FIELDPIPE_RULES_DIR", str(tmp_path))
    (tmp_path / "household-survey.yaml").write_text(textwrap.dedent("""
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
    """))
    (tmp_path / "water-point-audit.yaml").write_text("rules:\n  - {id: typo, expression: depth > 1, message: x}\n")
    make_form()
    make_form(slug="water-point-audit")
    headers = auth(collector_key)
    overspent = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 20000, "monthly_savings": 30000})
    rich = submission(answers={"name": "Ravi", "city": "pune", "monthly_income": 900000, "monthly_savings": 1000})
    for body in (overspent, rich):
        assert client.post("/api/v1/forms/household-survey/responses", json=body, headers=headers).status_code == 201
    client.post("/api/v1/forms/water-point-audit/responses", json=submission(), headers=headers)

    run = run_dag("validate_responses", expect="failed")

    states = {ti.map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "validate_form"}
    assert sorted(states.values()) == [TaskInstanceState.FAILED, TaskInstanceState.SUCCESS]
    flags = client.get("/api/v1/forms/household-survey/flags", headers=auth(admin_key)).get_json()["items"]
    assert {(f["submission_id"], f["rule_id"], f["message"]) for f in flags} == {
        (overspent["submission_id"], "savings-within-income", "Savings 30000 exceed income 20000"),
        (rich["submission_id"], "income-in-range", "Income 900000 is out of range"),
    }
    assert client.get("/api/v1/forms/water-point-audit/flags", headers=auth(admin_key)).get_json()["items"] == []

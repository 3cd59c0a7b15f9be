"""Forms in a bounded number of groups (fieldpipe/pipelines/groups.py): the task count follows the work, not
the forms; inside a group one failing form fails alone, visibly, and the others' work lands."""

from __future__ import annotations

import logging

import psycopg
import pytest
import yaml

from fieldpipe import forms, responses
from fieldpipe.pipelines import groups
from fieldpipe.rules import store
from fieldpipe.rules.validate import pending_work, validate_group
from fieldpipe.pipelines.failures import FormFailed
from tests.helpers import HOUSEHOLD_QUESTIONS, auth, put_rules, submission


def units(*rows: int) -> list[dict]:
    return [{"key": index, "name": f"form-{index:03d}", "rows": n} for index, n in enumerate(rows)]


def load(group: list[dict]) -> int:
    return sum(groups.cost(u) for u in group)


def test_three_hundred_skewed_forms_make_eight_balanced_groups_holding_every_form_once():
    # a few forms hold most responses, as in the field
    skewed = units(*[400_000, 250_000, 120_000] + [2_000 + (i * 37) % 900 for i in range(297)])
    packed = groups.pack(skewed, groups.group_count(skewed, 8, 50_000))

    assert len(packed) == 8
    assert sorted(u["key"] for g in packed for u in g) == list(range(300))
    # the biggest form sits alone; the rest are spread within one form's cost of each other
    small = [g for g in packed if all(u["rows"] < 100_000 for u in g)]
    assert len(small) == 5 and max(map(load, small)) - min(map(load, small)) <= 3_000
    assert groups.pack(list(reversed(skewed)), 8) == packed  # same work, same groups


def test_group_count_follows_the_work_within_its_bounds():
    assert groups.group_count([], 8, 50_000) == 0
    assert groups.group_count(units(0, 0), 8, 50_000) == 1  # tiny work shares one task
    assert groups.group_count(units(48_999), 8, 50_000) == 1  # 48,999 + 1,000 fills exactly one group
    assert groups.group_count(units(49_000, 0), 8, 50_000) == 2  # one row more spills into a second
    assert groups.group_count(units(*[10**6] * 3), 8, 50_000) == 3  # never more groups than forms
    assert groups.group_count(units(*[10**6] * 20), 8, 50_000) == 8  # never more than the bound
    assert groups.group_count(units(*[10**6] * 20), 1, 1) == 1


def test_plan_reads_its_bounds_from_the_settings_and_labels_each_group(monkeypatch):
    monkeypatch.setenv("FIELDPIPE_PIPELINE_MAX_GROUPS", "3")
    monkeypatch.setenv("FIELDPIPE_PIPELINE_GROUP_ROWS", "1")
    planned = groups.plan(units(5, 0, 0, 0, 7))

    assert [len(g["units"]) for g in planned] == [1, 2, 2]
    assert planned[0]["label"] == "group 1/3: 1 form(s), 7 rows (form-004)"
    assert groups.plan([]) == []


def test_a_failing_form_fails_alone_and_the_task_fails_after_every_form_had_its_turn(caplog):
    done = []

    def work(unit):
        if unit["name"] == "form-001":
            raise ValueError("a message that may quote submitted data 9999")
        done.append(unit["name"])
        return f"{unit['rows']} rows"

    caplog.set_level(logging.INFO, logger="fieldpipe.pipelines.groups")
    with pytest.raises(FormFailed) as failed:
        groups.run_group("validate_responses", {"label": "g", "units": units(3, 4, 5)}, work)

    assert done == ["form-000", "form-002"]
    assert "1 of 3 form(s) failed" in str(failed.value) and "form-001: builtins.ValueError" in str(failed.value)
    assert "9999" not in caplog.text + str(failed.value)
    assert "validate_responses [1/3] form-000: 3 rows" in caplog.text
    assert "validate_responses [2/3] form-001: FAILED" in caplog.text
    assert "validate_responses [3/3] form-002: 5 rows" in caplog.text
    assert groups.run_group("p", {"label": "g", "units": units(3, 5)}, lambda u: "ok") == {"forms": 2, "rows": 8}


def test_a_failure_a_retry_may_cure_is_raised_for_the_task_retries_after_the_other_forms():
    done = []

    def work(unit):
        if unit["key"] == 0:
            raise psycopg.OperationalError("server closed the connection")
        if unit["key"] == 1:
            raise ValueError("permanent")
        done.append(unit["key"])
        return "ok"

    with pytest.raises(psycopg.OperationalError):
        groups.run_group("export_sheets", {"label": "g", "units": units(1, 1, 1)}, work)
    assert done == [2]


def test_forms_whose_expectations_need_gx_come_last_in_their_group_after_the_sql_only_ones(
        client, admin_key, collector_key, make_form, conn, caplog):
    in_range = ("  - {id: in-range, expectation: expect_column_values_to_be_between, "
                "kwargs: {column: monthly_income, min_value: 0, max_value: 1000}, message: Out of range}\n")
    in_sql = ("  - {id: typical, expectation: expect_column_values_within_median_deviations, "
              "kwargs: {column: monthly_income}, message: Unusual}\n")
    rules = "rules:\n  - {id: thrifty, expression: monthly_savings <= monthly_income, message: Savings exceed income}\n"
    for slug, document in (("a-gx", rules + "expectations:\n" + in_range), ("b-plain", rules),
                           ("c-in-sql", rules + "expectations:\n" + in_sql)):
        make_form(slug=slug)
        put_rules(client, admin_key, slug, document)
        body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 5000, "monthly_savings": 9000})
        assert client.post(f"/api/v1/forms/{slug}/responses", json=body, headers=auth(collector_key)).status_code == 201

    units = pending_work(conn)
    assert {u["name"]: u["gx"] for u in units} == {"a-gx": True, "b-plain": False, "c-in-sql": False}
    caplog.set_level(logging.INFO, logger="fieldpipe.pipelines.groups")
    [group] = groups.plan(units)
    assert validate_group(conn, group) == {"forms": 3, "rows": 3}

    order = [line.split("] ")[1].split(":")[0] for line in caplog.messages if line.startswith("validate_responses [")]
    assert order == ["b-plain", "c-in-sql", "a-gx"]
    flagged = client.get("/api/v1/forms/a-gx/flags", headers=auth(admin_key)).get_json()["items"]
    assert sorted(f["rule_id"] for f in flagged) == ["in-range", "thrifty"]  # GX ran, after its import


@pytest.mark.airflow
def test_poisoned_rules_fail_one_form_alone_among_many_in_bounded_groups(
        client, admin_key, collector_key, make_form, run_dag, monkeypatch):
    from airflow.utils.state import TaskInstanceState

    slugs = [f"survey-{n:02d}" for n in range(12)]
    for slug in slugs:
        make_form(slug=slug)
        put_rules(client, admin_key, slug, "rules:\n  - {id: thrifty, expression: monthly_savings <= monthly_income, "
                                           "message: Savings exceed income}\n")
        body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": 500})
        assert client.post(f"/api/v1/forms/{slug}/responses", json=body, headers=auth(collector_key)).status_code == 201
    poisoned = slugs[5]  # its form drops the question its rule reads
    client.patch(f"/api/v1/forms/{poisoned}", headers=auth(admin_key), json={
        "questions": [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "monthly_savings"]})
    monkeypatch.setenv("FIELDPIPE_PIPELINE_MAX_GROUPS", "3")
    monkeypatch.setenv("FIELDPIPE_PIPELINE_GROUP_ROWS", "1")

    run = run_dag("validate_responses", expect="failed")

    instances = run.get_task_instances()
    assert len(instances) == 4  # plan_groups and three groups: not one per form
    states = sorted(ti.state for ti in instances if ti.task_id == "validate_group")
    assert states == [TaskInstanceState.FAILED, TaskInstanceState.SUCCESS, TaskInstanceState.SUCCESS]
    for slug in slugs:
        flags = client.get(f"/api/v1/forms/{slug}/flags", headers=auth(admin_key)).get_json()["items"]
        assert [f["rule_id"] for f in flags] == ([] if slug == poisoned else ["thrifty"]), slug
    failed = client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"]
    assert [(f["pipeline"], f["form"]) for f in failed] == [("validate_responses", poisoned)]


@pytest.mark.airflow
def test_at_three_hundred_forms_a_poisoned_rules_file_fails_its_form_alone(client, admin_key, conn, run_dag):
    """Issue 23's done-when, with 300 tiny forms in the default bounds (at most 8 groups)."""
    from airflow.utils.state import TaskInstanceState

    organization_id = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    rules = yaml.safe_load("rules:\n  - {id: thrifty, expression: monthly_savings <= monthly_income, "
                           "message: Savings exceed income}\n")
    slugs = [f"tiny-{n:03d}" for n in range(300)]
    for slug in slugs:  # through the domain functions the API calls: 300 forms in seconds
        forms.create_form(conn, organization_id, {"slug": slug, "title": slug, "questions": HOUSEHOLD_QUESTIONS})
        form = forms.get_form_row(conn, organization_id, slug)
        store.save(conn, form, rules, "test")
        body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": 500})
        assert [o.status for o in responses.ingest(conn, form, [body])] == ["created"]
    poisoned = slugs[150]  # its form drops the question its rule reads
    forms.update_form(conn, organization_id, poisoned,
                      {"questions": [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "monthly_savings"]})

    run = run_dag("validate_responses", expect="failed")

    instances = run.get_task_instances()
    validating = [ti for ti in instances if ti.task_id == "validate_group"]
    assert 1 <= len(validating) <= 8 and len(instances) == len(validating) + 1  # not one per form
    assert sorted(ti.state for ti in validating).count(TaskInstanceState.FAILED) == 1
    flagged = {r["slug"]: r["n"] for r in conn.execute(
        """SELECT f.slug, count(fl.id) FILTER (WHERE fl.rule_id = 'thrifty' AND fl.status = 'open') AS n
             FROM forms f LEFT JOIN flags fl ON fl.form_id = f.id GROUP BY f.slug""")}
    assert flagged == {slug: 0 if slug == poisoned else 1 for slug in slugs}
    failed = client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"]
    assert [(f["pipeline"], f["form"]) for f in failed] == [("validate_responses", poisoned)]

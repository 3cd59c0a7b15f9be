"""The `rules` task kind (issue 16): a form's business rules are its rules task. Its configuration is the rules
document in force (warnings in the submit answer, flags from validate_responses); disabling it stops both,
removing it leaves the form without rules; a bad document is a 422 listing every problem."""

from alembic import command
from psycopg.types.json import Jsonb

from fieldpipe.db import alembic_config, connect
from fieldpipe.rules.validate import pending_work, validate_slug
from tests.conftest import _create_database
from tests.helpers import auth, put_rules, submission

TASKS = "/api/v1/forms/household-survey/tasks"
RULES_URL = "/api/v1/forms/household-survey/rules"
SAVINGS = {"id": "savings-within-income", "expression": "monthly_savings <= monthly_income",
           "message": "Savings {monthly_savings} exceed income {monthly_income}"}
DOCUMENT = {"rules": [SAVINGS], "expectations": []}


def post(client, key, savings):
    body = submission()
    body["answers"]["monthly_savings"] = savings
    resp = client.post("/api/v1/forms/household-survey/responses", json=body, headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def open_flags(conn):
    return [r["rule_id"] for r in conn.execute("SELECT rule_id FROM flags WHERE status = 'open' ORDER BY id")]


def add_rules_task(client, key, config):
    return client.post(TASKS, json={"kind": "rules", "config": config}, headers=auth(key))


def test_a_rules_task_is_the_forms_rules_warnings_at_submit_and_flags_after(client, conn, admin_key, collector_key,
                                                                          make_form):
    make_form()
    assert post(client, collector_key, 30000)["warnings"] == []  # no rules task: no rules
    resp = add_rules_task(client, admin_key, {"rules": [SAVINGS]})
    assert resp.status_code == 201, resp.get_json()
    task = resp.get_json()
    assert (task["kind"], task["mode"], task["events"], task["config"]) == ("rules", "sync", [], DOCUMENT)
    rules = client.get(RULES_URL, headers=auth(admin_key)).get_json()
    assert (rules["version"], rules["created_by"], rules["rules"]) == (1, f"form task {task['id']}", [SAVINGS])

    answer = post(client, collector_key, 30000)
    assert [w["rule_id"] for w in answer["warnings"]] == ["savings-within-income"]
    assert "tasks" not in answer  # its output is `warnings`; no other sync task ran
    assert post(client, collector_key, 100)["warnings"] == []
    validate_slug(conn, "household-survey")
    assert open_flags(conn) == ["savings-within-income", "savings-within-income"]  # the one before the task too

    # Changing the task's configuration is a new rules version; PUT .../rules changes the task in turn.
    stricter = {**SAVINGS, "expression": "monthly_savings <= monthly_income * 0.5"}
    patched = client.patch(f"{TASKS}/{task['id']}", json={"config": {"rules": [stricter]}}, headers=auth(admin_key))
    assert patched.status_code == 200 and patched.get_json()["config"] == {"rules": [stricter], "expectations": []}
    assert client.get(RULES_URL, headers=auth(admin_key)).get_json()["version"] == 2
    put_rules(client, admin_key, "household-survey", "rules: []", expect=201)
    listed = client.get(TASKS, headers=auth(admin_key)).get_json()["items"]
    assert [(t["id"], t["config"]) for t in listed] == [(task["id"], {"rules": [], "expectations": []})]
    # one document in force per form
    again = add_rules_task(client, admin_key, DOCUMENT)
    assert [(e["field"], e["code"]) for e in again.get_json()["errors"]] == [("kind", "one_per_form")]


def test_put_rules_installs_the_task_and_a_disabled_task_stops_warnings_and_flags_until_enabled(
        client, conn, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", "rules: [{id: savings-within-income, "
              "expression: monthly_savings <= monthly_income, message: too much}]", expect=201)
    [task] = client.get(TASKS, headers=auth(admin_key)).get_json()["items"]
    assert (task["kind"], task["enabled"], [r["id"] for r in task["config"]["rules"]]) == (
        "rules", True, ["savings-within-income"])
    url = f"{TASKS}/{task['id']}"
    assert client.patch(url, json={"enabled": False}, headers=auth(admin_key)).status_code == 200
    assert post(client, collector_key, 30000)["warnings"] == []
    assert pending_work(conn) == [] and validate_slug(conn, "household-survey") == []
    assert open_flags(conn) == []
    # PUT .../rules on a disabled task changes its document and leaves it disabled
    put_rules(client, admin_key, "household-survey", "rules: [{id: savings-within-income, "
              "expression: monthly_savings <= monthly_income, message: way too much}]", expect=201)
    assert client.get(url, headers=auth(admin_key)).get_json()["enabled"] is False
    assert post(client, collector_key, 30000)["warnings"] == []

    client.patch(url, json={"enabled": True}, headers=auth(admin_key))
    assert [w["message"] for w in post(client, collector_key, 30000)["warnings"]] == ["way too much"]
    validate_slug(conn, "household-survey")
    assert open_flags(conn) == ["savings-within-income"] * 3  # what came while it was off is validated too


def test_removing_the_rules_task_leaves_the_form_without_rules_and_closes_its_flags(
        client, conn, admin_key, collector_key, make_form):
    make_form()
    task = add_rules_task(client, admin_key, DOCUMENT).get_json()
    post(client, collector_key, 30000)
    validate_slug(conn, "household-survey")
    assert open_flags(conn) == ["savings-within-income"]
    assert client.delete(f"{TASKS}/{task['id']}", headers=auth(admin_key)).status_code == 204
    rules = client.get(RULES_URL, headers=auth(admin_key)).get_json()
    assert (rules["version"], rules["rules"]) == (None, [])
    assert client.get(f"{RULES_URL}/versions", headers=auth(admin_key)).get_json()["items"][0]["version"] == 1
    assert post(client, collector_key, 30000)["warnings"] == []
    [run] = validate_slug(conn, "household-survey")
    assert open_flags(conn) == [] and run.closed == {"rule_removed": 1}


def test_a_bad_rules_configuration_is_422_with_every_problem_and_stores_nothing(client, conn, admin_key, make_form):
    make_form()
    resp = add_rules_task(client, admin_key, {"rules": "all of them", "extra": 1})
    assert resp.status_code == 422 and resp.headers["Content-Type"] == "application/problem+json"
    assert sorted((e["field"], e["code"]) for e in resp.get_json()["errors"]) == [
        ("config", "additionalProperties"), ("config.rules", "type")]
    bad = {"rules": [
        {"id": "no-such-answer", "expression": "monthly_spend <= monthly_income", "message": "spend"},
        {"id": "quotes-unknown", "expression": "monthly_savings >= 0", "message": "{household_size} people"},
        {"id": "bad-severity", "expression": "monthly_savings >= 0", "message": "m", "severity": "fatal"}],
        "expectations": [{"id": "unknown-column", "expectation": "expect_column_values_to_not_be_null",
                          "kwargs": {"column": "age"}, "message": "m"}]}
    resp = add_rules_task(client, admin_key, bad)
    assert resp.status_code == 422
    assert [(e["field"], e["code"], e["rule_id"]) for e in resp.get_json()["errors"]] == [
        ("config.rules[0]", "unknown_question", "no-such-answer"),
        ("config.rules[1]", "unknown_question", "quotes-unknown"),
        ("config.rules[2]", "invalid_rule", "bad-severity"),
        ("config.expectations[0]", "unknown_question", "unknown-column")]
    assert client.get(TASKS, headers=auth(admin_key)).get_json()["items"] == []
    assert client.get(RULES_URL, headers=auth(admin_key)).get_json()["version"] is None
    # the same on a change: the task and the version in force stay as they were
    task = add_rules_task(client, admin_key, DOCUMENT).get_json()
    resp = client.patch(f"{TASKS}/{task['id']}", json={"config": bad}, headers=auth(admin_key))
    assert resp.status_code == 422 and len(resp.get_json()["errors"]) == 4
    assert client.get(f"{TASKS}/{task['id']}", headers=auth(admin_key)).get_json()["config"] == DOCUMENT
    assert client.get(RULES_URL, headers=auth(admin_key)).get_json()["version"] == 1
    # a rules task runs at submission: there is nothing to replay
    resp = client.post(f"{TASKS}/{task['id']}/replay", json={"from": "2026-11-01T00:00:00Z",
                                                           "to": "2026-11-02T00:00:00Z"}, headers=auth(admin_key))
    assert resp.status_code == 422


def test_the_rules_in_force_become_rules_tasks_and_a_downgrade_keeps_them(pg_server):
    url = _create_database(pg_server[0], "fieldpipe_rules_tasks_migration")
    command.upgrade(alembic_config(url), "0021_operations")
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme') RETURNING id").fetchone()["id"]
        forms = {slug: conn.execute("INSERT INTO forms (organization_id, slug, title) VALUES (%s, %s, %s) RETURNING id",
                                    (org, slug, slug)).fetchone()["id"] for slug in ("ruled", "plain", "twice")}
        for slug, versions in (("ruled", [DOCUMENT]), ("twice", [DOCUMENT, {"rules": [], "expectations": []}])):
            for n, document in enumerate(versions, 1):
                conn.execute("INSERT INTO rules_versions (form_id, version, document, created_by) VALUES (%s, %s, %s, 'x')",
                             (forms[slug], n, Jsonb(document)))
            conn.execute("UPDATE forms SET rules_version = %s WHERE id = %s", (len(versions), forms[slug]))
    command.upgrade(alembic_config(url), "head")
    with connect(url) as conn:
        tasks = conn.execute("""SELECT f.slug, t.kind, t.mode, t.config, t.enabled FROM form_tasks t
                                  JOIN forms f ON f.id = t.form_id ORDER BY f.slug""").fetchall()
        assert [tuple(t.values()) for t in tasks] == [
            ("ruled", "rules", "sync", DOCUMENT, True), ("twice", "rules", "sync", {"rules": [], "expectations": []}, True)]
        conn.execute("UPDATE form_tasks SET enabled = false WHERE form_id = %s", (forms["twice"],))
    command.downgrade(alembic_config(url), "0021_operations")
    with connect(url) as conn:
        versions = {r["slug"]: r["rules_version"] for r in conn.execute("SELECT slug, rules_version FROM forms")}
        assert versions == {"ruled": 1, "plain": None, "twice": None}  # switched off: no rules in force
        assert conn.execute("SELECT count(*) AS n FROM form_tasks").fetchone()["n"] == 0

"""Flag notices end to end: a flagged response produces one SMS and one signed webhook; an edit that
passes produces `flag.resolved`. Real validation, real outbox tables, a real local HTTP receiver."""

import pytest

from fieldpipe.flag_notices import enqueue_flag_notices
from fieldpipe.rules.validate import validate_slug
from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import auth, put_rules, submission

RULES = """
form: household-survey
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
    severity: error
    notify: collector
  - id: name-without-digits
    expression: name matches "^[^0-9]+$"
    message: "Respondent name '{name}' contains digits"
    severity: warning
    notify: collector
  - id: savings-rate-plausible
    expression: monthly_savings / monthly_income <= 0.8
    message: "Savings {monthly_savings} are more than 80% of income {monthly_income}"
    severity: warning
    notify: none
"""
POLICY = DeliveryPolicy(timeout=2.0)


@pytest.fixture(autouse=True)
def environment(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def survey(make_form, client, admin_key):
    form = make_form("household-survey")
    put_rules(client, admin_key, "household-survey", RULES)
    return form


def pipeline(conn):
    """What the DAGs do after ingestion: validate_responses, then flag_callbacks (enqueue notices and deliver)."""
    validate_slug(conn, "household-survey")
    produced = enqueue_flag_notices(conn)
    deliver_due(conn, POLICY)
    return produced


def post(client, key, **answers):
    body = submission()
    body["answers"].update(answers)
    resp = client.post("/api/v1/forms/household-survey/responses", json=body, headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return body


def sms(conn):
    return conn.execute("SELECT dedupe_key, kind, recipient, body FROM sms_messages ORDER BY id").fetchall()


def test_flagged_response_gets_one_sms_and_one_signed_webhook_listing_all_its_violations(
        client, conn, admin_key, collector_key, survey, receiver):
    hook = client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["flag.opened", "flag.resolved"]},
                       headers=auth(admin_key)).get_json()
    body = post(client, collector_key, name="Asha 2", monthly_income=5000, monthly_savings=9000)
    response_id = conn.execute("SELECT id FROM responses").fetchone()["id"]

    assert pipeline(conn) == {"opened": 1, "sms": 1, "resolved": 0, "deliveries": 1}
    for _ in range(2):  # reruns and retried tasks add nothing
        assert pipeline(conn) == {"opened": 0, "sms": 0, "resolved": 0, "deliveries": 0}

    [message] = sms(conn)
    assert message["dedupe_key"] == f"flag:{response_id}:1" and message["kind"] == "flag"
    assert message["recipient"] == body["collector"]["phone"]
    assert "Savings 9000 exceed income 5000" in message["body"] and "contains digits" in message["body"]
    assert "80%" not in message["body"]  # a notify: none rule is not the collector's business

    [request] = receiver.requests
    assert verify_signature(hook["secret"], request.headers[SIGNATURE_HEADER], request.body)
    event = request.json()
    assert event["type"] == "flag.opened" and event["id"] == f"flag.opened:{response_id}:1"
    data = event["data"]
    assert data["form"] == "household-survey" and data["submission_id"] == body["submission_id"]
    assert data["revision"] == 1 and data["collector_id"] == "enum-7"
    assert [(v["rule_id"], v["severity"]) for v in data["violations"]] == [
        ("savings-within-income", "error"), ("name-without-digits", "warning")]
    assert data["violations"][0]["message"] == "Savings 9000 exceed income 5000"
    assert data["edit"] == {"method": "PATCH", "path": f"/api/v1/forms/household-survey/responses/{body['submission_id']}"}


def test_an_edit_that_passes_sends_resolved_and_one_that_fails_announces_the_new_revision(
        client, conn, admin_key, collector_key, survey, receiver):
    client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["flag.opened", "flag.resolved"]},
                headers=auth(admin_key))
    body = post(client, collector_key, monthly_income=5000, monthly_savings=9000)
    pipeline(conn)
    edit_path = receiver.requests[0].json()["data"]["edit"]["path"]

    still_wrong = {"answers": {**body["answers"], "monthly_income": 5000, "monthly_savings": 6000}}
    assert client.patch(edit_path, json=still_wrong, headers=auth(collector_key)).status_code == 200
    assert pipeline(conn) == {"opened": 1, "sms": 1, "resolved": 0, "deliveries": 1}
    assert [r.json()["type"] for r in receiver.requests] == ["flag.opened", "flag.opened"]
    assert receiver.requests[1].json()["data"]["revision"] == 2
    assert "Savings 6000 exceed income 5000" in sms(conn)[1]["body"]

    fixed = {"answers": {**body["answers"], "monthly_income": 5000, "monthly_savings": 1000}}
    assert client.patch(edit_path, json=fixed, headers=auth(collector_key)).status_code == 200
    enqueue_flag_notices(conn)  # before validation has seen the edit: nothing is resolved yet
    assert pipeline(conn)["resolved"] == 2  # both announced revisions are now settled
    assert pipeline(conn) == {"opened": 0, "sms": 0, "resolved": 0, "deliveries": 0}
    resolved = [r.json() for r in receiver.requests if r.json()["type"] == "flag.resolved"]
    assert sorted(e["data"]["flagged_revision"] for e in resolved) == [1, 2]
    assert all(e["data"]["revision"] == 3 for e in resolved)
    assert {f["rule_id"] for f in resolved[0]["data"]["resolved"]} == {"savings-within-income"}
    assert len(sms(conn)) == 2  # resolution is told to the webhook, not by SMS


def test_only_collector_rules_notify_and_only_wanted_events_are_delivered(
        client, conn, admin_key, collector_key, survey, receiver):
    client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["flag.resolved"]}, headers=auth(admin_key))
    post(client, collector_key, monthly_income=5000, monthly_savings=4500)  # only the notify: none warning
    no_phone = submission(collector={"id": "enum-9"})
    no_phone["answers"].update(monthly_income=100, monthly_savings=200)
    assert client.post("/api/v1/forms/household-survey/responses", json=no_phone,
                       headers=auth(collector_key)).status_code == 201

    produced = pipeline(conn)
    assert produced == {"opened": 1, "sms": 0, "resolved": 0, "deliveries": 0}
    assert sms(conn) == [] and receiver.requests == []
    assert conn.execute("SELECT count(*) AS n FROM flags WHERE status = 'open'").fetchone()["n"] == 3


@pytest.mark.airflow
def test_the_dag_announces_and_delivers(client, conn, admin_key, collector_key, survey, receiver, run_dag):
    client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["flag.opened"]}, headers=auth(admin_key))
    post(client, collector_key, monthly_income=5000, monthly_savings=9000)
    validate_slug(conn, "household-survey")

    run = run_dag("flag_callbacks")

    assert {ti.task_id: ti.xcom_pull(task_ids=ti.task_id) for ti in run.get_task_instances()}["announce_flags"] == {
        "opened": 1, "sms": 1, "resolved": 0, "deliveries": 1}
    assert [r.json()["type"] for r in receiver.requests] == ["flag.opened"]
    assert len(sms(conn)) == 1

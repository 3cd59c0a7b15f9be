"""Issue 22: failures reach a person. A DAG task that fails after its retries raises one notice per incident,
mailed through Airflow's SMTP notifier to a real local SMTP server and posted as a signed webhook to a real
local receiver; an unreachable notifier is recorded and retried and never fails anything."""

import socket

import pytest

from fieldpipe.dev.airflow_runtime import local_smtp_connection
from fieldpipe.dev.embedded_db import free_port
from fieldpipe.dev.mail_sink import MailSink
from fieldpipe.operations import notices
from fieldpipe.pipelines import notify
from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import HOUSEHOLD_QUESTIONS, auth, put_rules, submission

OPERATOR = "ops@acme.example"


@pytest.fixture
def mail(tmp_path, monkeypatch):
    with MailSink(tmp_path / "mail") as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(sink.port))
        yield sink


@pytest.fixture
def receiver(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def operators(client, admin_key, receiver):
    """acme mails OPERATOR and has a webhook for pipeline failures (and one for flags only, which hears nothing)."""
    assert client.put("/api/v1/notices/recipients", json={"emails": [OPERATOR]},
                      headers=auth(admin_key)).status_code == 200
    hook = client.post("/api/v1/webhooks", json={"url": receiver.url("/ops"), "events": ["pipeline.failed"]},
                       headers=auth(admin_key)).get_json()
    client.post("/api/v1/webhooks", json={"url": receiver.url("/flags"), "events": ["flag.opened"]},
                headers=auth(admin_key))
    return hook["secret"]


def break_the_rules(client, admin_key, collector_key, make_form):
    """The form's rules read a question the form then drops: validate_responses fails for it, at once."""
    make_form()
    put_rules(client, admin_key, "household-survey",
              "rules:\n  - {id: local-word, expression: local_word != 'x', message: x}\n")
    client.patch("/api/v1/forms/household-survey", headers=auth(admin_key),
                 json={"questions": [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "local_word"]})
    client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(collector_key))


@pytest.mark.airflow
def test_broken_rules_give_one_notice_by_mail_and_signed_webhook_however_often_the_run_fails(
        client, conn, admin_key, collector_key, make_form, run_dag, mail, receiver, operators):
    break_the_rules(client, admin_key, collector_key, make_form)

    run_dag("validate_responses", expect="failed")
    run_dag("validate_responses", expect="failed")  # the same incident: nothing more is sent
    deliver_due(conn, DeliveryPolicy(timeout=5.0))
    deliver_due(conn, DeliveryPolicy(timeout=5.0))

    [message] = mail.messages()
    assert message["To"] == OPERATOR
    assert message["Subject"] == "[fieldpipe] validate_responses failed for acme/household-survey"
    text = message.get_body(("html", "plain")).get_content()
    assert "DAG validate_responses, task validate_group[" in text and "failed after 1 try" in text
    assert "Form: acme/household-survey (failed 1 run(s) in a row" in text and "local-word" in text
    assert "/dags/validate_responses/runs/" in text and "/tasks/validate_group/mapped/0" in text  # the log
    [posted] = receiver.requests
    assert posted.path == "/ops" and posted.headers["Fieldpipe-Event"] == "pipeline.failed"
    assert verify_signature(operators, posted.headers[SIGNATURE_HEADER], posted.body)
    data = posted.json()["data"]
    assert data["dag_id"] == "validate_responses" and data["forms"][0]["form"] == "acme/household-survey"
    assert "local-word" in data["forms"][0]["error"] and data["log_url"].startswith("http")
    [notice] = client.get("/api/v1/notices", headers=auth(admin_key)).get_json()["items"]
    assert (notice["kind"], notice["email_status"], notice["email_attempts"]) == ("pipeline.failed", "sent", 1)
    assert notice["resolved_at"] is None


def failed_context(dag_id="send_sms", task_id="dispatch_due_messages", map_index=-1, rendered=None):
    """What the Task SDK hands an on_failure_callback, as far as the notifier reads it."""
    import datetime as dt
    from types import SimpleNamespace

    started = dt.datetime.now(dt.timezone.utc)
    ti = SimpleNamespace(dag_id=dag_id, task_id=task_id, map_index=map_index, rendered_map_index=rendered,
                         run_id="scheduled__2026-11-30T01:00:00+00:00", try_number=4, start_date=started,
                         log_url=f"http://localhost:8080/dags/{dag_id}/runs/r/tasks/{task_id}?try_number=4")
    try:
        raise ConnectionError("provider said: +919812345678 is unknown")  # a message that quotes data
    except ConnectionError as err:
        return {"ti": ti, "dag_run": SimpleNamespace(start_date=started), "exception": err}


def test_a_failure_of_no_one_form_goes_to_the_platform_operators_without_quoting_the_error(
        conn, mail, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org, oncall@example.org")
    notify.on_task_failed(failed_context())
    notify.on_task_failed(failed_context())  # a second failure of the same task before it succeeded

    [message] = mail.messages()
    assert message["To"] == "platform@example.org, oncall@example.org"
    text = message.get_body(("html", "plain")).get_content()
    assert "DAG send_sms, task dispatch_due_messages" in text and "failed after 4 tries" in text
    assert "ConnectionError" in text and "+919812345678" not in text
    assert conn.execute("SELECT organization_id FROM operator_notices").fetchall() == [{"organization_id": None}]


def test_each_failed_form_is_its_own_incident_resolved_once_the_form_is_processed_again(conn, mail, client,
                                                                                      admin_key, make_form):
    from fieldpipe.pipelines import failures

    conn.execute("UPDATE organizations SET notice_emails = '{ops@acme.example}'")
    make_form()
    make_form(slug="water-point-audit")
    survey, audit = (r["id"] for r in conn.execute("SELECT id FROM forms ORDER BY slug"))
    context = failed_context(dag_id="export_sheets", task_id="export_group", map_index=0, rendered="2 forms")
    later = failed_context(dag_id="export_sheets", task_id="export_group", map_index=1)  # the next run, started
    failures.record(conn, "export_sheets", survey, failures.Explained("SheetGone", "the sheet was deleted"))
    notify.on_task_failed(context)
    failures.record(conn, "export_sheets", survey, failures.Explained("SheetGone", "the sheet was deleted"))
    failures.record(conn, "export_sheets", audit, failures.Explained("SheetGone", "the sheet was deleted"))
    failures.record(conn, "validate_responses", audit, failures.Explained("RulesBroken", "rule x"))  # another DAG's
    notify.on_task_failed(later)
    assert sorted(m["Subject"] for m in mail.messages()) == [
        "[fieldpipe] export_sheets failed for acme/household-survey",
        "[fieldpipe] export_sheets failed for acme/water-point-audit"]

    failures.clear(conn, "export_sheets", survey)
    notify.on_task_succeeded({"ti": context["ti"]})
    open_incidents = [r["incident"] for r in conn.execute(
        "SELECT incident FROM operator_notices WHERE resolved_at IS NULL")]
    assert open_incidents == [f"form:export_sheets:{audit}"]


def test_success_resolves_the_incident_so_the_next_failure_is_announced_again(conn, mail, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    notify.on_task_failed(failed_context())
    notify.on_task_succeeded({"ti": failed_context()["ti"]})
    notify.on_task_failed(failed_context())
    assert len(mail.messages()) == 2
    # another task's success resolves nothing
    notify.on_task_succeeded({"ti": failed_context(task_id="other")["ti"]})
    notify.on_task_failed(failed_context())
    assert len(mail.messages()) == 2


def test_an_unreachable_mail_server_is_recorded_retried_and_never_raises(conn, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(port))
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    notify.on_task_failed(failed_context())  # must not raise

    row = conn.execute("SELECT id, email_status, email_attempts, email_last_error FROM operator_notices").fetchone()
    assert (row["email_status"], row["email_attempts"]) == ("pending", 1)
    assert "Connection" in row["email_last_error"] or "refused" in row["email_last_error"]
    # not due yet: the backoff holds it back
    assert notices.send_due_emails(conn, notices.smtp_mailer("smtp_default")) == {"sent": 0, "retry": 0, "failed": 0}
    conn.execute("UPDATE operator_notices SET email_next_attempt_at = now()")
    with MailSink(tmp_path / "mail", port) as sink:
        assert notices.send_due_emails(conn, notices.smtp_mailer("smtp_default"))["sent"] == 1
        assert len(sink.messages()) == 1
    assert conn.execute("SELECT email_status, email_attempts FROM operator_notices").fetchone() == {
        "email_status": "sent", "email_attempts": 2}


def test_mail_is_given_up_after_the_configured_attempts(conn, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_NOTICE_EMAIL_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    notices.raise_notice(conn, notices.Notice(None, "x", "pipeline.failed", "s", "b"))

    def refuse(to, subject, text):
        raise socket.timeout("timed out")

    assert notices.send_due_emails(conn, refuse) == {"sent": 0, "retry": 1, "failed": 0}
    conn.execute("UPDATE operator_notices SET email_next_attempt_at = now()")
    assert notices.send_due_emails(conn, refuse) == {"sent": 0, "retry": 0, "failed": 1}
    assert conn.execute("SELECT email_status, email_last_error FROM operator_notices").fetchone() == {
        "email_status": "failed", "email_last_error": "TimeoutError: timed out"}


def test_no_recipients_means_no_mail_but_the_notice_is_kept(conn, mail, monkeypatch):
    monkeypatch.delenv("FIELDPIPE_OPERATOR_EMAILS", raising=False)
    notify.on_task_failed(failed_context())
    assert mail.messages() == []
    assert conn.execute("SELECT email_status FROM operator_notices").fetchone()["email_status"] == "none"


def test_an_incident_still_open_after_a_day_is_announced_again(conn, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    notice = notices.Notice(None, "task:x.y", "pipeline.failed", "s", "b")
    assert notices.raise_notice(conn, notice) is not None
    assert notices.raise_notice(conn, notice) is None
    conn.execute("UPDATE operator_notices SET created_at = now() - interval '25 hours'")
    assert notices.raise_notice(conn, notice) is not None
    assert [r["open"] for r in conn.execute(
        "SELECT resolved_at IS NULL AS open FROM operator_notices ORDER BY id")] == [False, True]


def test_recipients_are_admin_only_per_organization_and_checked(client, admin_key, collector_key,
                                                               other_org_admin_key, conn):
    url = "/api/v1/notices/recipients"
    assert client.put(url, json={"emails": [OPERATOR]}, headers=auth(collector_key)).status_code == 403
    bad = client.put(url, json={"emails": [OPERATOR, "not an address", ""]}, headers=auth(admin_key))
    assert bad.status_code == 422
    assert [e["field"] for e in bad.get_json()["errors"]] == ["emails[1]", "emails[2]"]
    assert client.get(url, headers=auth(admin_key)).get_json() == {"emails": []}  # nothing stored
    assert client.put(url, json={"emails": [OPERATOR, OPERATOR]}, headers=auth(admin_key)).get_json() == {
        "emails": [OPERATOR]}
    assert client.get(url, headers=auth(other_org_admin_key)).get_json() == {"emails": []}
    rival = conn.execute("SELECT id FROM organizations WHERE slug = 'rival'").fetchone()["id"]
    notices.raise_notice(conn, notices.Notice(rival, "backlog:sms", "backlog.exceeded", "rival's", "b"))
    assert client.get("/api/v1/notices", headers=auth(admin_key)).get_json()["items"] == []
    assert len(client.get("/api/v1/notices", headers=auth(other_org_admin_key)).get_json()["items"]) == 1


def test_the_mail_text_is_sent_as_it_is_not_rendered_as_a_template(conn, mail, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    notices.raise_notice(conn, notices.Notice(None, "t", "pipeline.failed", "rule {{ 1 + 1 }} <b>",
                                              "expression {% if %} <script>"))
    notices.send_due_emails(conn, notices.smtp_mailer("smtp_default"))
    [message] = mail.messages()
    assert message["Subject"] == "rule {{ 1 + 1 }} <b>"
    assert "expression {% if %} &lt;script&gt;" in message.get_body(("html",)).get_content()

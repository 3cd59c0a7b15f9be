"""Issue 22: retry all, /metrics, request ids in every error, backlog alarms and the daily digest; real
PostgreSQL, real HTTP (the Twilio stand-in) where a provider is involved."""

import datetime as dt
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fieldpipe.config import MisconfiguredThreshold, backlog_threshold
from fieldpipe.db import connect
from fieldpipe.operations import backlog, digest
from fieldpipe.orgs import ensure_organization
from fieldpipe.sms.dispatch import dispatch
from fieldpipe.sms.outbox import NewMessage, enqueue
from fieldpipe.webhooks.delivery import enqueue as enqueue_events
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.twilio_server import FakeTwilio
from tests.helpers import auth, submission
from tests.test_sms import fast, twilio

REPO = Path(__file__).resolve().parent.parent


def org_id(conn, slug):
    return conn.execute("SELECT id FROM organizations WHERE slug = %s", (slug,)).fetchone()["id"]


def messages(conn, org, statuses, kind="announcement"):
    enqueue(conn, [NewMessage(f"{kind}:{org}:{n}", kind, org, f"+9198765{org:02d}{n:03d}", "Hello")
                   for n in range(len(statuses))])
    ids = [r["id"] for r in conn.execute(
        "SELECT id FROM sms_messages WHERE organization_id = %s AND kind = %s ORDER BY id", (org, kind))]
    for message_id, status in zip(ids, statuses):
        conn.execute("UPDATE sms_messages SET status = %s WHERE id = %s", (status, message_id))
    return ids


# --- retry all ---------------------------------------------------------------------------------------------------

def test_retry_all_messages_requeues_the_failed_of_the_own_organization_in_one_go(
        client, conn, admin_key, collector_key, other_org_admin_key):
    acme, rival = org_id(conn, "acme"), org_id(conn, "rival")
    messages(conn, acme, ["failed", "failed", "unknown", "sent"])
    messages(conn, acme, ["failed"], kind="receipt")
    messages(conn, rival, ["failed"])
    url = "/api/v1/messages/retry"

    assert client.post(url, headers=auth(collector_key)).status_code == 403
    assert client.post(url, query_string={"kind": "receipt"}, headers=auth(admin_key)).get_json() == {"requeued": 1}
    assert client.post(url, headers=auth(admin_key)).get_json() == {"requeued": 2}  # failed only, by default
    assert client.post(url, headers=auth(admin_key)).get_json() == {"requeued": 0}
    assert client.post(url, query_string={"status": "unknown"}, headers=auth(admin_key)).get_json() == {"requeued": 1}
    states = {(r["organization_id"], r["status"]): r["n"] for r in conn.execute(
        "SELECT organization_id, status, count(*) AS n FROM sms_messages GROUP BY 1, 2")}
    assert states == {(acme, "queued"): 4, (acme, "sent"): 1, (rival, "failed"): 1}
    resends = conn.execute("SELECT count(*) AS n FROM sms_attempts WHERE outcome = 'resend'").fetchone()["n"]
    assert resends == 4  # the history keeps each replay


def test_retry_all_since_is_inclusive_and_bad_filters_are_422_changing_nothing(client, conn, admin_key):
    acme = org_id(conn, "acme")
    old, recent = messages(conn, acme, ["failed", "failed"])
    conn.execute("UPDATE sms_messages SET updated_at = '2026-11-28T10:00:00Z' WHERE id = %s", (old,))
    conn.execute("UPDATE sms_messages SET updated_at = '2026-11-29T10:00:00Z' WHERE id = %s", (recent,))
    url = "/api/v1/messages/retry"
    for bad in ({"status": "sent"}, {"since": "yesterday"}, {"since": "2026-11-29T10:00:00"}, {"kind": " "},
                {"limit": "5"}):
        resp = client.post(url, query_string=bad, headers=auth(admin_key))
        assert resp.status_code == 422 and resp.mimetype == "application/problem+json", bad
    assert conn.execute("SELECT count(*) AS n FROM sms_messages WHERE status = 'failed'").fetchone()["n"] == 2
    since = {"since": "2026-11-29T15:30:00+05:30"}  # the same instant as the recent failure
    assert client.post(url, query_string=since, headers=auth(admin_key)).get_json() == {"requeued": 1}
    assert conn.execute("SELECT status FROM sms_messages WHERE id = %s", (recent,)).fetchone()["status"] == "queued"
    assert conn.execute("SELECT status FROM sms_messages WHERE id = %s", (old,)).fetchone()["status"] == "failed"


def test_retry_all_deliveries_filters_by_event_and_never_touches_another_organization(
        client, conn, admin_key, collector_key, other_org_admin_key, monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    for key in (admin_key, other_org_admin_key):
        client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/h",
                                              "events": ["flag.opened", "pipeline.failed"]}, headers=auth(key))
    events = [{"organization_id": org_id(conn, slug), "event": event, "event_key": f"{slug}{event}{n}", "data": {}}
              for slug in ("acme", "rival") for event in ("flag.opened", "pipeline.failed") for n in range(2)]
    enqueue_events(conn, events)
    conn.execute("UPDATE webhook_deliveries SET status = 'failed'")
    url = "/api/v1/deliveries/retry"

    assert client.post(url, headers=auth(collector_key)).status_code == 403
    assert client.post(url, query_string={"status": "queued"}, headers=auth(admin_key)).status_code == 422
    assert client.post(url, query_string={"kind": "pipeline.failed"}, headers=auth(admin_key)).get_json() == {
        "requeued": 2}
    assert client.post(url, headers=auth(admin_key)).get_json() == {"requeued": 2}
    states = {(r["slug"], r["status"]): r["n"] for r in conn.execute(
        """SELECT o.slug, d.status, count(*) AS n FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             JOIN organizations o ON o.id = w.organization_id GROUP BY 1, 2""")}
    assert states == {("acme", "queued"): 4, ("rival", "failed"): 4}


# --- metrics and request ids --------------------------------------------------------------------------------------

def metric(text: str, name: str, **labels) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == want:
            return float(match.group(2))
    return 0.0


def test_metrics_show_the_submissions_made_and_the_requests_by_route_and_status(client, make_form, collector_key, conn):
    make_form()
    before = client.get("/metrics").get_data(as_text=True)
    url, headers = "/api/v1/forms/household-survey/responses", auth(collector_key)
    body = submission()
    assert client.post(url, json=body, headers=headers).status_code == 201
    assert client.post(url, json=body, headers=headers).status_code == 200
    changed = {**body, "answers": {**body["answers"], "name": "Someone else"}}
    assert client.post(url, json=changed, headers=headers).status_code == 409
    assert client.post(url, json={**submission(), "answers": {"city": "nowhere"}}, headers=headers).status_code == 422
    client.post(url + "/batch", json={"items": [submission(), body, {}]}, headers=headers)

    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.mimetype == "text/plain"
    after = resp.get_data(as_text=True)
    made = {outcome: metric(after, "fieldpipe_submissions_total", outcome=outcome)
            - metric(before, "fieldpipe_submissions_total", outcome=outcome)
            for outcome in ("created", "duplicate", "conflict", "invalid")}
    assert made == {"created": 2, "duplicate": 2, "conflict": 1, "invalid": 2}
    route = "/api/v1/forms/<slug>/responses"
    for status, count in (("201", 1), ("200", 1), ("409", 1), ("422", 1)):
        labels = {"method": "POST", "route": route, "status": status}
        assert metric(after, "fieldpipe_http_requests_total", **labels) \
            - metric(before, "fieldpipe_http_requests_total", **labels) == count, status
    assert metric(after, "fieldpipe_http_request_duration_seconds_count", method="POST", route=route) \
        - metric(before, "fieldpipe_http_request_duration_seconds_count", method="POST", route=route) == 4
    assert 'le="0.1"' in after


def test_metrics_show_the_backlog_gauges(client, conn):
    acme = ensure_organization(conn, "acme")
    messages(conn, acme, ["queued", "queued"])
    conn.execute("UPDATE sms_messages SET created_at = now() - interval '10 minutes'")
    conn.commit()
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "fieldpipe_backlog_items", backlog="sms") == 2
    assert 600 <= metric(text, "fieldpipe_backlog_oldest_age_seconds", backlog="sms") < 3600
    assert metric(text, "fieldpipe_backlog_items", backlog="webhook") == 0
    assert 'fieldpipe_backlog_oldest_age_seconds{backlog="unvalidated"} 0.0' in text


def test_every_error_body_and_answer_carries_the_request_id(client, admin_key):
    given = client.get("/api/v1/forms/nope", headers={**auth(admin_key), "X-Request-ID": "trace-7"})
    assert given.status_code == 404 and given.headers["X-Request-ID"] == "trace-7"
    assert given.get_json()["request_id"] == "trace-7"
    for resp in (client.get("/api/v1/forms"), client.get("/api/v1/forms?limit=0", headers=auth(admin_key)),
                 client.post("/api/v1/forms", data=b"{", headers={**auth(admin_key), "Content-Type": "application/json"}),
                 client.get("/api/v1/forms", headers={**auth(admin_key), "X-Request-ID": "bad id with spaces"})):
        made = resp.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        if resp.status_code >= 400:
            assert resp.get_json()["request_id"] == made


def test_access_log_lines_are_json_with_the_request_id_and_no_query(client, admin_key, caplog):
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="fieldpipe.access"):
        client.get("/api/v1/forms?limit=2", headers={**auth(admin_key), "X-Request-ID": "trace-8"})
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "fieldpipe.access"]
    assert line["request_id"] == "trace-8" and line["status"] == 200 and line["route"] == "/api/v1/forms"
    assert line["path"] == "/api/v1/forms" and line["duration_ms"] >= 0


# --- backlogs -----------------------------------------------------------------------------------------------------

def test_sms_provider_down_past_the_threshold_raises_one_backlog_notice_resolved_when_it_drains(
        conn, db_url, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_BACKLOG_MAX_AGE_SMS", "30")
    acme, rival = ensure_organization(conn, "acme"), ensure_organization(conn, "rival")
    conn.execute("UPDATE organizations SET notice_emails = '{ops@acme.example}' WHERE id = %s", (acme,))
    messages(conn, acme, ["queued", "queued"])
    messages(conn, rival, ["queued"])
    conn.commit()
    with FakeTwilio() as provider:
        provider.fail_next(503, times=100)  # the provider is down: every attempt is retried later
        dispatch(lambda: connect(db_url), twilio(provider), settings=fast("twilio", backoff_base_s=3600,
                                                                            backoff_cap_s=3600), wait_for_retries=False)
        assert conn.execute("SELECT count(*) AS n FROM sms_messages WHERE status = 'queued'").fetchone()["n"] == 3

        # held down for 29 minutes: not yet a backlog
        conn.execute("UPDATE sms_messages SET created_at = now() - interval '29 minutes'")
        assert backlog.check(conn)["over"] == 0
        # 31 minutes for acme's messages: one notice, for acme only, however often it is checked
        conn.execute("UPDATE sms_messages SET created_at = now() - interval '31 minutes' WHERE organization_id = %s",
                     (acme,))
        assert backlog.check(conn) == {"checked": 2, "over": 1, "opened": 1, "resolved": 0}
        assert backlog.check(conn)["opened"] == 0
        notice = conn.execute("SELECT * FROM operator_notices").fetchone()
        assert (notice["organization_id"], notice["kind"], notice["email_status"]) == (acme, "backlog.exceeded",
                                                                                     "pending")
        assert "sms backlog older than 30 min" in notice["subject"] and "2 item(s)" in notice["body"]
        assert notice["data"]["items"] == 2 and notice["data"]["threshold_s"] == 1800

        # the provider is back: the messages go out, the backlog drains, the notice is resolved
        provider.fail_next(503, times=0)
        conn.execute("UPDATE sms_messages SET next_attempt_at = now()")
        conn.commit()
        dispatch(lambda: connect(db_url), twilio(provider), settings=fast("twilio"))
    assert backlog.check(conn)["resolved"] == 1
    assert conn.execute("SELECT resolved_at IS NOT NULL AS done FROM operator_notices").fetchone()["done"]


def test_response_backlogs_count_from_the_oldest_response_not_yet_validated(conn, client, make_form, admin_key,
                                                                            collector_key):
    make_form()
    client.put("/api/v1/forms/household-survey/rules", json={"rules": []}, headers=auth(admin_key))
    client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(collector_key))
    conn.execute("UPDATE responses SET updated_at = now() - interval '45 minutes'")
    rows = {r["backlog"]: r for r in backlog.organization_backlogs(conn)}
    assert 45 * 60 <= rows["unvalidated"]["oldest_age_s"] < 50 * 60 and rows["unvalidated"]["items"] is None
    form_id = conn.execute("SELECT id FROM forms").fetchone()["id"]
    conn.execute("INSERT INTO validation_watermarks VALUES (%s, 'version:1', now())", (form_id,))
    assert "unvalidated" not in {r["backlog"] for r in backlog.organization_backlogs(conn)}


@pytest.mark.parametrize("raw", ["0", "-5", "abc", "1.5", "10081"])
def test_a_misconfigured_threshold_is_refused_naming_the_variable(raw):
    with pytest.raises(MisconfiguredThreshold, match="FIELDPIPE_BACKLOG_MAX_AGE_WEBHOOK must be a whole number"):
        backlog_threshold("webhook", raw)


def test_thresholds_default_and_accept_their_bounds():
    assert backlog_threshold("sms", None) == dt.timedelta(minutes=30)
    assert backlog_threshold("sms", "") == dt.timedelta(minutes=30)
    assert backlog_threshold("sms", " 1 ") == dt.timedelta(minutes=1)
    assert backlog_threshold("sms", "10080") == dt.timedelta(days=7)


def test_the_operations_dag_file_refuses_a_misconfigured_threshold_when_parsed(tmp_path):
    import os

    env = {**os.environ, "FIELDPIPE_BACKLOG_MAX_AGE_UNEXPORTED": "soon"}
    parsed = subprocess.run([sys.executable, "-c", "import runpy; runpy.run_path('dags/operations.py')"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert parsed.returncode != 0
    assert "FIELDPIPE_BACKLOG_MAX_AGE_UNEXPORTED must be a whole number of minutes" in parsed.stderr
    assert "'soon'" in parsed.stderr


# --- the daily digest ---------------------------------------------------------------------------------------------

def failed_form_today(conn, organization_id):
    from fieldpipe.pipelines import failures

    form_id = conn.execute("""INSERT INTO forms (organization_id, slug, title) VALUES (%s, 'quiet-form', 'Q')
                              RETURNING id""", (organization_id,)).fetchone()["id"]
    failures.record(conn, "validate_responses", form_id, failures.Explained("RulesBroken", "rule x"))


def test_the_daily_digest_lists_each_organizations_failures_of_the_day_with_counts_once(conn, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_API_URL", "https://fieldpipe.example.org")
    acme, rival, quiet = (ensure_organization(conn, s) for s in ("acme", "rival", "quiet"))
    messages(conn, acme, ["failed", "failed", "unknown", "sent"])
    messages(conn, rival, ["failed"], kind="receipt")
    messages(conn, quiet, ["sent"])
    conn.execute("UPDATE sms_messages SET updated_at = '2026-11-29T23:59:59Z' WHERE organization_id = %s", (acme,))
    conn.execute("UPDATE sms_messages SET updated_at = '2026-11-29T00:00:00Z' WHERE organization_id <> %s", (acme,))
    messages(conn, rival, ["failed"], kind="flag")  # failed today (now), not on the 29th
    failed_form_today(conn, quiet)  # neither is a form whose pipeline failed today

    assert digest.send_digests(conn, dt.date(2026, 11, 29)) == {"organizations": 2, "opened": 2}
    assert digest.send_digests(conn, dt.date(2026, 11, 29))["opened"] == 0
    by_org = {r["organization_id"]: r for r in conn.execute("SELECT * FROM operator_notices")}
    assert set(by_org) == {acme, rival}
    assert by_org[acme]["subject"] == "[fieldpipe] 3 failure(s) on 2026-11-29"
    assert "failed announcement: 2" in by_org[acme]["body"] and "unknown announcement: 1" in by_org[acme]["body"]
    assert "POST https://fieldpipe.example.org/api/v1/messages/retry?since=2026-11-29T00%3A00%3A00%2B00%3A00" \
        in by_org[acme]["body"]
    assert by_org[rival]["data"]["failures"] == [{"source": "sms", "what": "failed receipt", "count": 1}]


@pytest.mark.airflow
def test_the_operations_dag_raises_the_backlog_notice_and_mails_it(conn, run_dag, tmp_path, monkeypatch):
    from fieldpipe.dev.airflow_runtime import local_smtp_connection
    from fieldpipe.dev.mail_sink import MailSink

    acme = ensure_organization(conn, "acme")
    conn.execute("UPDATE organizations SET notice_emails = '{ops@acme.example}' WHERE id = %s", (acme,))
    messages(conn, acme, ["queued"])
    conn.execute("UPDATE sms_messages SET created_at = now() - interval '2 hours'")
    conn.commit()
    with MailSink(tmp_path) as sink:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(sink.port))
        run_dag("operations")
        [mail] = sink.messages()
    assert mail["To"] == "ops@acme.example" and mail["Subject"] == "[fieldpipe] acme: sms backlog older than 30 min"
    assert conn.execute("SELECT email_status FROM operator_notices").fetchone()["email_status"] == "sent"


@pytest.mark.airflow
def test_a_mail_server_that_cannot_be_reached_never_fails_the_operations_dag_and_the_mail_is_kept(
        conn, run_dag, monkeypatch):
    from fieldpipe.dev.airflow_runtime import local_smtp_connection
    from fieldpipe.dev.embedded_db import free_port

    acme = ensure_organization(conn, "acme")
    conn.execute("UPDATE organizations SET notice_emails = '{ops@acme.example}' WHERE id = %s", (acme,))
    messages(conn, acme, ["queued"])
    conn.execute("UPDATE sms_messages SET created_at = now() - interval '2 hours'")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(free_port()))  # nothing listens there
    run_dag("operations")  # asserts the run succeeded
    notice = conn.execute("SELECT kind, email_status, email_attempts, email_last_error FROM operator_notices").fetchone()
    assert (notice["kind"], notice["email_status"], notice["email_attempts"]) == ("backlog.exceeded", "pending", 1)
    assert "refused" in notice["email_last_error"] or "Connection" in notice["email_last_error"]

"""SMS outbox end to end against real HTTP: our Twilio stand-in, moto's SNS server, and the file provider."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from fieldpipe.db import connect
from fieldpipe.dev.embedded_db import free_port
from fieldpipe.orgs import ensure_organization
from fieldpipe.sms.dispatch import dispatch, dispatch_configured
from fieldpipe.sms.outbox import NewMessage, enqueue, retry_message
from fieldpipe.sms.providers import FileProvider, SnsProvider, TwilioProvider
from fieldpipe.sms.segments import count_segments
from fieldpipe.config import SmsSettings
from tests.conftest import REPO
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from tests.helpers import auth, submission

RECEIPT_SETTINGS = {"sms_receipt": {"phone_question": "phone",
                                    "template": "Thank you {name}: {city}, income {monthly_income}. Ref {submission_id}"}}


def fast(provider: str, **overrides) -> SmsSettings:
    """High rates and tiny backoffs, so the tests take seconds."""
    base = dict(rate=2000.0, backoff_base_s=0.01, backoff_cap_s=0.05, lease_s=600.0, batch_size=100,
                concurrency=8, max_attempts=5)
    return dataclasses.replace(SmsSettings.from_env(provider), **{**base, **overrides})


def phone(i: int) -> str:
    return f"+919876{i:06d}"


def queue(conn, count: int, organization_id: int, prefix: str = "announcement:1") -> None:
    enqueue(conn, [NewMessage(f"{prefix}:{phone(i)}", "announcement", organization_id, phone(i), f"{prefix} message {i}")
                   for i in range(count)])


def twilio(fake: FakeTwilio, read_timeout: float = 5.0) -> TwilioProvider:
    return TwilioProvider(fake.base_url, ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER, read_timeout=read_timeout)


def statuses(conn) -> Counter:
    return Counter({r["status"]: r["n"] for r in conn.execute("SELECT status, count(*) n FROM sms_messages GROUP BY 1")})


@pytest.fixture
def org(conn):
    return ensure_organization(conn, "acme")


# --- segments -------------------------------------------------------------------------------------------

def test_segments_count_gsm7_extension_characters_and_ucs2_like_a_carrier():
    assert count_segments("a" * 160) == count_segments("a" * 160).__class__("GSM-7", 160, 1)
    assert count_segments("a" * 161).count == 2
    assert count_segments("a" * 306).count == 2 and count_segments("a" * 307).count == 3
    assert count_segments("{" * 80).units == 160 and count_segments("{" * 80).count == 1  # escapes cost two
    hindi = "आपका जवाब मिल गया, धन्यवाद"
    assert count_segments(hindi).encoding == "UCS-2"
    assert count_segments("प" * 70).count == 1 and count_segments("प" * 71).count == 2
    assert count_segments("प" * 134).count == 2 and count_segments("प" * 135).count == 3


def test_enqueue_is_idempotent_and_an_overlong_message_fails_with_its_reason(conn, org):
    first = [NewMessage("flag:1", "flag", org, "+919876543210", "Please recheck household 7")]
    assert enqueue(conn, first) == 1
    assert enqueue(conn, first) == 0
    long_hindi = NewMessage("flag:2", "flag", org, "+919876543210", "प" * 300)
    bad_number = NewMessage("flag:3", "flag", org, "12345", "hello")
    assert enqueue(conn, [long_hindi, bad_number], max_segments=4) == 2
    rows = {r["dedupe_key"]: r for r in conn.execute("SELECT * FROM sms_messages")}
    assert rows["flag:1"]["status"] == "queued" and rows["flag:1"]["encoding"] == "GSM-7"
    assert rows["flag:2"]["status"] == "failed" and rows["flag:2"]["body"] == "प" * 300  # not cut
    assert "5 UCS-2 segments" in rows["flag:2"]["last_error"] and "maximum of 4" in rows["flag:2"]["last_error"]
    assert rows["flag:3"]["status"] == "failed" and "recipient" in rows["flag:3"]["last_error"]


# --- receipts -------------------------------------------------------------------------------------------

def test_each_accepted_response_gets_one_receipt_quoting_its_answers(client, make_form, admin_key, conn, tmp_path):
    make_form(settings=RECEIPT_SETTINGS)
    url = "/api/v1/forms/household-survey/responses"
    first = submission()
    assert client.post(url, json=first, headers=auth(admin_key)).status_code == 201
    assert client.post(url, json=first, headers=auth(admin_key)).status_code == 200  # a retried post
    edited = {**first["answers"], "monthly_income": 25000}
    assert client.patch(f"{url}/{first['submission_id']}", json={"answers": edited},
                      headers=auth(admin_key)).status_code == 200
    no_phone = submission(answers={"name": "Ravi", "city": "nagpur"})
    batch = [submission(answers={**first["answers"], "name": f"B{i}"}) for i in range(3)] + [no_phone]
    assert client.post(f"{url}/batch", json={"items": batch + batch[:1]}, headers=auth(admin_key)).status_code == 200

    rows = conn.execute("SELECT dedupe_key, recipient, body, kind FROM sms_messages ORDER BY id").fetchall()
    response_ids = [r["id"] for r in conn.execute("SELECT id FROM responses WHERE answers ? 'phone' ORDER BY id")]
    assert [r["dedupe_key"] for r in rows] == [f"receipt:{i}" for i in response_ids] and len(rows) == 4
    assert rows[0]["body"] == f"Thank you Asha: Pune, income 20000. Ref {first['submission_id']}"
    assert rows[0]["recipient"] == "+919876543210" and rows[0]["kind"] == "receipt"

    provider = FileProvider(tmp_path / "sent.jsonl")
    report = dispatch(lambda: connect(os.environ["DATABASE_URL"]), provider, settings=fast("file"))
    assert report.counts["sent"] == 4
    lines = [json.loads(line) for line in (tmp_path / "sent.jsonl").read_text().splitlines()]
    assert {line["body"] for line in lines} == {r["body"] for r in rows}
    assert set(lines[0]) == {"message_id", "to", "body", "kind", "sent_at"}
    dispatch(lambda: connect(os.environ["DATABASE_URL"]), provider, settings=fast("file"))  # a rerun
    assert len((tmp_path / "sent.jsonl").read_text().splitlines()) == 4



def test_a_receipt_quotes_yes_no_choice_labels_and_nothing_for_an_unanswered_question_and_keeps_a_typo(
        client, make_form, admin_key, conn):
    questions = [{"key": "phone", "label": "Phone", "type": "phone"},
                 {"key": "working", "label": "Working", "type": "boolean"},
                 {"key": "problems", "label": "Problems", "type": "multi_choice",
                  "choices": [{"value": "leak", "label": "Leaking"}, {"value": "dry", "label": "Dry"}, "dirty"]},
                 {"key": "source", "label": "Source", "type": "single_choice", "choices": [{"value": "tap", "label": "Tap"}]},
                 {"key": "notes", "label": "Notes", "type": "text"}]
    template = "{working}/{problems}/{source}/[{notes}] {workng}"
    make_form(slug="pump", questions=questions,
              settings={"sms_receipt": {"phone_question": "phone", "template": template}})
    url = "/api/v1/forms/pump/responses"
    for answers in ({"phone": "+919876543210", "working": False, "problems": ["dry", "dirty", "leak"], "source": "tap"},
                    {"phone": "+919876543211", "working": True, "problems": []}):
        assert client.post(url, json=submission(answers=answers), headers=auth(admin_key)).status_code == 201

    bodies = [r["body"] for r in conn.execute("SELECT body FROM sms_messages ORDER BY id")]
    assert bodies == ["no/Dry, dirty, Leaking/Tap/[] {workng}", "yes///[] {workng}"]

# --- Twilio: classification, retries, unknown, resend ----------------------------------------------------

@pytest.mark.parametrize("status", [401, 403, 404])
def test_twilio_refusing_our_credentials_or_account_keeps_the_message_for_a_retry(status):
    """The deployment's fault, not the message's: failing it would drop a message nobody can resend."""
    with FakeTwilio() as fake:
        fake.fail_next(status)
        result = twilio(fake).send({"id": 1, "recipient": phone(1), "body": "hello"})
    assert (result.outcome, result.http_status, result.error_code) == ("retry", status, "20500")
    assert result.error == f"HTTP {status} code 20500: scripted failure"


def test_twilio_needs_a_sender_and_sends_from_it():
    with pytest.raises(ValueError, match="^twilio_default needs extra 'from' \\(a number\\) or 'messaging_service_sid'$"):
        TwilioProvider("http://127.0.0.1:9", ACCOUNT_SID, AUTH_TOKEN)
    with FakeTwilio() as fake:
        assert twilio(fake).send({"id": 1, "recipient": phone(1), "body": "hello"}).outcome == "sent"
        assert [(m["to"], m["from"], m["body"]) for m in fake.messages] == [(phone(1), FROM_NUMBER, "hello")]

def test_twilio_errors_are_classified_retried_and_recorded(conn, db_url, org):
    with FakeTwilio() as fake:
        fake.invalid_numbers.add(phone(1))
        fake.unsubscribed_numbers.add(phone(2))
        queue(conn, 4, org)
        fake.fail_next(429, retry_after=1)  # message 0: throttled, told to wait a second
        report = dispatch(lambda: connect(db_url), twilio(fake), settings=fast("twilio", concurrency=1),
                          wait_for_retries=False)
        assert report.counts == {"sent": 1, "retry": 1, "failed": 2, "unknown": 0}
        rows = {r["recipient"]: r for r in conn.execute("SELECT * FROM sms_messages")}
        assert rows[phone(1)]["status"] == "failed" and "21211" in rows[phone(1)]["last_error"]
        assert rows[phone(2)]["status"] == "failed" and "21610" in rows[phone(2)]["last_error"]
        assert rows[phone(3)]["status"] == "sent" and rows[phone(3)]["provider_message_id"].startswith("SM")
        throttled = rows[phone(0)]
        assert throttled["status"] == "queued" and "429" in throttled["last_error"]
        assert throttled["next_attempt_at"] >= throttled["updated_at"] + dt.timedelta(seconds=0.99)
        assert report.elapsed_s >= 0.99  # Retry-After held back the whole provider, not just that message
        history = conn.execute("SELECT outcome, http_status, retry_after_s FROM sms_attempts "
                               "WHERE message_id = %s", (throttled["id"],)).fetchall()
        assert history == [{"outcome": "retry", "http_status": 429, "retry_after_s": 1.0}]
        assert fake.bodies().count(rows[phone(3)]["body"]) == 1


def test_server_errors_back_off_until_max_attempts_then_fail_with_history(conn, db_url, org):
    with FakeTwilio() as fake:
        queue(conn, 2, org)
        fake.fail_next(500, times=3)  # both fail once; whichever is retried first fails again and gives up
        dispatch(lambda: connect(db_url), twilio(fake), settings=fast("twilio", concurrency=1, max_attempts=2))
        history = {}
        for row in conn.execute("""SELECT m.status, m.last_error, array_agg(a.outcome ORDER BY a.id) AS outcomes
                                     FROM sms_messages m JOIN sms_attempts a ON a.message_id = m.id
                                    GROUP BY m.id ORDER BY m.status"""):
            history[row["status"]] = row
        assert history["failed"]["outcomes"] == ["retry", "failed"]
        assert history["failed"]["last_error"].startswith("gave up after 2 attempts; last error: HTTP 500")
        assert history["sent"]["outcomes"] == ["retry", "sent"]
        assert len(fake.messages) == 1


def test_a_timeout_after_sending_is_unknown_never_resent_until_an_operator_says_so(conn, db_url, org):
    with FakeTwilio(hang_s=1.0) as fake:
        queue(conn, 2, org)
        fake.hang_next(1)  # Twilio takes the message but we never hear back
        provider = twilio(fake, read_timeout=0.3)
        report = dispatch(lambda: connect(db_url), provider, settings=fast("twilio", concurrency=1))
        assert report.counts["unknown"] == 1 and report.counts["sent"] == 1
        unknown = conn.execute("SELECT * FROM sms_messages WHERE status = 'unknown'").fetchone()
        dispatch(lambda: connect(db_url), provider, settings=fast("twilio"))
        assert fake.bodies().count(unknown["body"]) == 1  # reruns leave it alone

        cli = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "sms", "resend", str(unknown["id"])],
                             capture_output=True, text=True, cwd=REPO, env=os.environ, timeout=60)
        assert cli.returncode == 0, cli.stderr
        dispatch(lambda: connect(db_url), provider, settings=fast("twilio"))
        assert fake.bodies().count(unknown["body"]) == 2  # the operator chose to send it again
        assert statuses(conn) == Counter(sent=2)
        with pytest.raises(Exception, match="only unknown or failed"):
            retry_message(conn, None, unknown["id"])


# --- rate, concurrency, kill safety ---------------------------------------------------------------------

def test_two_dispatchers_at_once_never_send_a_message_twice(conn, db_url, org):
    count = 400
    with FakeTwilio(latency_s=0.005) as fake:
        queue(conn, count, org)
        settings = fast("twilio", rate=500.0, batch_size=50)
        reports = []
        threads = [threading.Thread(target=lambda: reports.append(
            dispatch(lambda: connect(db_url), twilio(fake), settings=settings))) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bodies = fake.bodies()
        assert len(bodies) == count and len(set(bodies)) == count
        assert sum(r.requests for r in reports) == count and all(r.requests > 0 for r in reports)
        assert statuses(conn) == Counter(sent=count)


def test_the_configured_rate_is_never_exceeded(conn, db_url, org):
    rate, count = 200.0, 300
    # The stand-in enforces the same rate; its burst of 20 (0.1 s) only absorbs scheduling jitter on a busy
    # machine: without the limiter, 16 threads would send at about 800/s.
    with FakeTwilio(rate=rate, burst=20, latency_s=0.02) as fake:
        queue(conn, count, org)
        report = dispatch(lambda: connect(db_url), twilio(fake), settings=fast("twilio", rate=rate, concurrency=16))
        assert fake.over_limit == 0 and len(set(fake.bodies())) == count
        assert report.rate <= rate * 1.01
        # concurrency hides the 20 ms latency (sequential would be < 50/s); asserted as requests in flight at
        # once, not as a rate, which a busy machine can push below any bound
        assert fake.max_in_flight > 1


def _dispatch_in_subprocess(db_url: str, var_dir, provider: str, extra_env: dict) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": db_url, "FIELDPIPE_VAR_DIR": str(var_dir), "FIELDPIPE_SMS_PROVIDER": provider,
           f"FIELDPIPE_SMS_RATE_{provider.upper()}": "100", "FIELDPIPE_SMS_BATCH_SIZE": "200", **extra_env}
    return subprocess.Popen([sys.executable, "-m", "fieldpipe.cli", "sms", "dispatch"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert proc.poll() is None and time.monotonic() < deadline, "the dispatcher ended before it was killed"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_killed_mid_batch_with_twilio_then_rerun_sends_nothing_twice(conn, db_url, org, tmp_path):
    count = 300
    with FakeTwilio() as fake:
        queue(conn, count, org)
        # the killed dispatcher's claims are leased for 0 s, so the rerun settles them at once
        proc = _dispatch_in_subprocess(db_url, tmp_path, "twilio", {"AIRFLOW_CONN_TWILIO_DEFAULT": fake.connection_json(),
                                                                    "FIELDPIPE_SMS_LEASE_S": "0"})
        _kill_when(proc, lambda: len(fake.messages) >= 60)
        assert conn.execute("SELECT count(*) n FROM sms_messages WHERE status = 'sending'").fetchone()["n"] > 0

        dispatch(lambda: connect(db_url), twilio(fake), settings=fast("twilio"))
        bodies = Counter(fake.bodies())
        assert max(bodies.values()) == 1  # nothing twice
        by_status = {s: {r["body"] for r in conn.execute("SELECT body FROM sms_messages WHERE status = %s", (s,))}
                     for s in ("sent", "unknown", "queued", "sending", "failed")}
        assert not by_status["queued"] and not by_status["sending"] and not by_status["failed"]
        # unknown = handed to Twilio by the killed process without a recorded answer: at most ~two chunks
        assert 0 < len(by_status["unknown"]) <= 2 * (100 // 2 + 1)
        assert by_status["sent"] <= set(bodies) and len(by_status["sent"]) + len(by_status["unknown"]) == count
        assert set(bodies) - by_status["sent"] <= by_status["unknown"]


def test_killed_mid_batch_with_the_file_provider_then_rerun_sends_each_exactly_once(conn, db_url, org, tmp_path):
    count = 300
    sent_file = tmp_path / "sms" / "sent.jsonl"
    queue(conn, count, org)
    proc = _dispatch_in_subprocess(db_url, tmp_path, "file", {"FIELDPIPE_SMS_LEASE_S": "0"})
    _kill_when(proc, lambda: sent_file.exists() and len(sent_file.read_bytes().splitlines()) >= 60)

    dispatch(lambda: connect(db_url), FileProvider(sent_file), settings=fast("file"))
    ids = Counter(json.loads(line)["message_id"] for line in sent_file.read_text().splitlines())
    assert len(ids) == count and max(ids.values()) == 1
    assert statuses(conn) == Counter(sent=count)  # the file says what was sent, so nothing stays unknown


# --- SNS through moto's server --------------------------------------------------------------------------

@pytest.fixture
def moto_sns(monkeypatch):
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{port}"}}))
    yield port
    server.stop()


def test_sns_sends_to_phone_numbers_through_the_aws_connection(conn, db_url, org, moto_sns):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sns.models import sns_backends

    queue(conn, 3, org)
    report = dispatch(lambda: connect(db_url), SnsProvider(), settings=fast("sns"))
    assert report.counts["sent"] == 3
    sent = sns_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sms_messages
    assert sorted(sent.values()) == [(phone(i), f"announcement:1 message {i}") for i in range(3)]
    provider_ids = {r["provider_message_id"] for r in conn.execute("SELECT provider_message_id FROM sms_messages")}
    assert provider_ids == set(sent)


def test_sns_unreachable_before_sending_is_retried_not_lost(conn, db_url, org, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{free_port()}"}}))
    queue(conn, 1, org)
    report = dispatch(lambda: connect(db_url), SnsProvider(connect_timeout=1),
                      settings=fast("sns", backoff_base_s=60, backoff_cap_s=600), wait_for_retries=False)
    assert report.counts["retry"] == 1
    row = conn.execute("SELECT status, last_error, next_attempt_at FROM sms_messages").fetchone()
    assert row["status"] == "queued" and "cannot connect" in row["last_error"]
    assert row["next_attempt_at"] > dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=25)  # backed off


# --- API ------------------------------------------------------------------------------------------------

def test_admins_list_messages_by_status_and_kind_and_resend(client, admin_key, collector_key, conn):
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    queue(conn, 2, org)
    enqueue(conn, [NewMessage("flag:9", "flag", org, "+919876543210", "प" * 400)])
    page = client.get("/api/v1/messages?status=queued&kind=announcement", headers=auth(admin_key)).get_json()
    assert [m["dedupe_key"] for m in page["items"]] == [f"announcement:1:{phone(i)}" for i in range(2)]
    failed = client.get("/api/v1/messages?status=failed", headers=auth(admin_key)).get_json()["items"]
    assert len(failed) == 1 and "segments" in failed[0]["last_error"]
    assert client.get("/api/v1/messages", headers=auth(collector_key)).status_code == 403
    bad = client.get("/api/v1/messages?status=lost", headers=auth(admin_key))
    assert bad.status_code == 422 and bad.get_json()["errors"] == [
        {"field": "status", "code": "enum", "message": "must be one of queued, sending, sent, failed, unknown, cancelled"}]
    other = ensure_organization(conn, "rival")
    enqueue(conn, [NewMessage("flag:10", "flag", other, "+919876543210", "theirs")])
    assert len(client.get("/api/v1/messages", headers=auth(admin_key)).get_json()["items"]) == 3
    queued_id = page["items"][0]["id"]
    assert client.post(f"/api/v1/messages/{queued_id}/resend", headers=auth(admin_key)).status_code == 409
    again = client.post(f"/api/v1/messages/{failed[0]['id']}/resend", headers=auth(admin_key))
    assert again.status_code == 200 and again.get_json()["status"] == "queued"
    assert [h["outcome"] for h in again.get_json()["history"]] == ["resend"]


def test_retry_is_the_replay_verb_of_both_outboxes_with_one_conflict_code(client, admin_key, conn, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_WEBHOOK_ALLOW_NETS", "127.0.0.0/8")
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    queue(conn, 2, org)
    queued, failed = [r["id"] for r in conn.execute("SELECT id FROM sms_messages ORDER BY id")]
    conn.execute("UPDATE sms_messages SET status = 'failed' WHERE id = %s", (failed,))
    refused = client.post(f"/api/v1/messages/{queued}/retry", headers=auth(admin_key))
    assert refused.status_code == 409
    assert (refused.get_json()["code"], refused.get_json()["type"]) == ("409.3", "/problems/not-retryable")
    again = client.post(f"/api/v1/messages/{failed}/retry", headers=auth(admin_key))
    assert again.status_code == 200 and again.get_json()["status"] == "queued"
    # the deliveries' refusal is the same problem (tests/test_webhooks_api.py asserts its 409)
    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["flag.opened"]},
                       headers=auth(admin_key))
    assert hook.status_code == 201, hook.get_json()
    conn.execute("""INSERT INTO webhook_deliveries (webhook_id, event, event_key, body, give_up_at)
                    VALUES (%s, 'flag.opened', 'k', '{}', now() + interval '1 day')""", (hook.get_json()["id"],))
    delivery_id = conn.execute("SELECT id FROM webhook_deliveries").fetchone()["id"]
    not_failed = client.post(f"/api/v1/deliveries/{delivery_id}/retry", headers=auth(admin_key))
    assert not_failed.status_code == 409 and not_failed.get_json()["code"] == "409.3"


def test_both_outboxes_show_a_claim_as_lease_until_and_release_it_when_recorded(client, admin_key, conn,
                                                                                  monkeypatch, tmp_path):
    """The lease is one word in both outboxes: set when a row is claimed (claim time + the lease), shown on the
    message and the delivery, cleared when the attempt is recorded."""
    from fieldpipe.sms.outbox import claim_due, record_outcomes
    from fieldpipe.sms.providers import SendResult
    from fieldpipe.webhooks.delivery import DeliveryPolicy, _claim

    monkeypatch.setenv("FIELDPIPE_WEBHOOK_ALLOW_NETS", "127.0.0.0/8")
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    queue(conn, 1, org)
    before = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    [claimed] = claim_due(conn, "file", 10, lease_s=120)
    message = client.get(f"/api/v1/messages/{claimed['id']}", headers=auth(admin_key)).get_json()
    lease_until = dt.datetime.fromisoformat(message["lease_until"])
    assert message["status"] == "sending"
    assert before + dt.timedelta(seconds=120) <= lease_until < before + dt.timedelta(seconds=180)
    record_outcomes(conn, [(claimed, SendResult("sent"))], fast("file"))
    message = client.get(f"/api/v1/messages/{claimed['id']}", headers=auth(admin_key)).get_json()
    assert (message["status"], message["lease_until"]) == ("sent", None)

    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["flag.opened"]},
                       headers=auth(admin_key)).get_json()
    conn.execute("""INSERT INTO webhook_deliveries (webhook_id, event, event_key, body, give_up_at)
                    VALUES (%s, 'flag.opened', 'k', '{}', now() + interval '1 day')""", (hook["id"],))
    policy = DeliveryPolicy(timeout=10, batch_size=8, concurrency=8)  # lease: 10 s a round of sends + 60 s
    [row] = _claim(conn, policy)
    delivery = client.get(f"/api/v1/deliveries/{row['id']}", headers=auth(admin_key)).get_json()
    assert delivery["status"] == "sending"
    assert (before + dt.timedelta(seconds=70) <= dt.datetime.fromisoformat(delivery["lease_until"])
            < before + dt.timedelta(seconds=130))
    listed = client.get("/api/v1/deliveries", headers=auth(admin_key)).get_json()["items"]
    assert [d["lease_until"] for d in listed] == [delivery["lease_until"]]


@pytest.mark.parametrize("written_as", ["url", "host, port and schema"])
def test_the_configured_twilio_connection_sends_from_its_number(conn, db_url, org, monkeypatch, written_as):
    # What the DAG and `fieldpipe sms dispatch` run: the provider built from the Airflow connection, whose
    # host an operator may write as a URL or as a bare host with port and schema.
    with FakeTwilio() as fake:
        connection = json.loads(fake.connection_json())
        if written_as != "url":
            connection.update(host="127.0.0.1", port=int(fake.base_url.rsplit(":", 1)[1]), schema="http")
        monkeypatch.setenv("AIRFLOW_CONN_TWILIO_DEFAULT", json.dumps(connection))
        queue(conn, 2, org)
        report = dispatch_configured(lambda: connect(db_url), "twilio")
        assert (report.provider, report.counts["sent"]) == ("twilio", 2)
        assert sorted((m["to"], m["from"]) for m in fake.messages) == [(phone(0), FROM_NUMBER), (phone(1), FROM_NUMBER)]
    assert statuses(conn) == Counter({"sent": 2})


def test_twilio_unreachable_before_sending_is_retried_saying_why(org):
    provider = TwilioProvider(f"http://127.0.0.1:{free_port()}", ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER)
    result = provider.send({"id": 1, "recipient": phone(1), "body": "hello", "kind": "announcement"})
    assert result.outcome == "retry"
    assert result.error.startswith("cannot connect: ") and "Connection refused" in result.error


def test_twilio_dropping_the_connection_after_the_request_is_unknown_not_retried(org):
    # The request went out, so Twilio may have the message: sending it again could deliver it twice.
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def take_the_request_and_hang_up():
        peer, _ = listener.accept()
        peer.recv(65536)
        peer.close()

    taker = threading.Thread(target=take_the_request_and_hang_up, daemon=True)
    taker.start()
    try:
        provider = TwilioProvider(f"http://127.0.0.1:{listener.getsockname()[1]}", ACCOUNT_SID, AUTH_TOKEN,
                                  from_number=FROM_NUMBER)
        result = provider.send({"id": 1, "recipient": phone(1), "body": "hello", "kind": "announcement"})
    finally:
        taker.join(10)
        listener.close()
    assert result.outcome == "unknown"
    assert result.error.startswith("connection dropped after the request was sent: ")


def test_the_file_provider_retries_when_it_cannot_write(tmp_path):
    provider = FileProvider(tmp_path / "sent.jsonl")
    (tmp_path / "sent.jsonl").mkdir()  # the disk refuses the append (here: the path is a directory)
    result = provider.send({"id": 1, "recipient": phone(1), "body": "hello", "kind": "announcement"})
    assert result.outcome == "retry" and result.error.startswith(f"cannot append to {tmp_path / 'sent.jsonl'}: ")


def test_a_message_queued_while_a_run_waits_for_a_retry_goes_out_before_the_retry(conn, db_url, org, tmp_path):
    """The next run cannot start while this one waits (one run at a time), so the waiting run takes new work."""
    queue(conn, 1, org, prefix="announcement:retry")
    conn.execute("UPDATE sms_messages SET attempts = 1, next_attempt_at = clock_timestamp() + interval '8 seconds'")
    retry_due = conn.execute("SELECT next_attempt_at FROM sms_messages").fetchone()["next_attempt_at"]
    run = threading.Thread(target=dispatch, args=(lambda: connect(db_url), FileProvider(tmp_path / "sent.jsonl")),
                           kwargs={"settings": fast("file"), "max_seconds": 20})
    run.start()
    time.sleep(1.5)  # the run is waiting for the retry by now (were it not, it would claim the new one at once)
    queue(conn, 1, org, prefix="receipt:new")
    run.join(timeout=60)
    sent = {}
    for line in (tmp_path / "sent.jsonl").read_text().splitlines():
        message = json.loads(line)
        sent[message["body"].split(" message")[0]] = dt.datetime.fromisoformat(message["sent_at"])
    assert set(sent) == {"announcement:retry", "receipt:new"}
    assert sent["receipt:new"] < retry_due <= sent["announcement:retry"]

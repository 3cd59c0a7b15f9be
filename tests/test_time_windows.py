"""Time-dependent behaviour with a controllable clock, never by sleeping.

The outboxes keep their schedule in PostgreSQL timestamps, so the tests move time by moving the rows:
"a minute passes" is every timestamp of the row a minute earlier (`next_attempt_at` becomes due, the retry
window's end comes a minute closer). Delays carry jitter (half to all of the step), so each is checked
against its band: base * 2^(n-1) * [0.5, 1]. Without growth the third delay would fall below its band.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import timedelta

import pytest

from fieldpipe.db import connect
from fieldpipe.orgs import ensure_organization
from fieldpipe.rules.validate import validate_slug
from fieldpipe.sms.dispatch import dispatch
from fieldpipe.sms.outbox import NewMessage, enqueue as enqueue_sms
from fieldpipe.config import SmsSettings
from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due, enqueue as enqueue_deliveries
from fieldpipe.webhooks.registry import register_webhook
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio
from tests.fakes.webhook_receiver import WebhookReceiver
from fieldpipe.sms.providers import TwilioProvider
from tests.helpers import auth, put_rules, submission

SLACK = 0.5  # seconds: the real time a step of the test itself takes


def band(base: float, attempt: int, cap: float) -> tuple[float, float]:
    step = min(cap, base * 2 ** (attempt - 1))
    return step * 0.5 - SLACK, step + SLACK


# --- backoff ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_sms_backoff_doubles_per_attempt_within_its_jitter_band_up_to_the_cap(seed):
    random.seed(seed)
    settings = dataclasses.replace(SmsSettings.from_env("file"), backoff_base_s=30.0, backoff_cap_s=600.0)
    for attempt in range(1, 12):
        low, high = band(30.0, attempt, 600.0)
        assert low + SLACK <= settings.backoff.delay(attempt, None) <= high - SLACK, attempt
    assert settings.backoff.delay(1, 45.0) >= 45.0            # Retry-After longer than the backoff wins
    assert settings.backoff.delay(5, 1.0) >= 240.0             # a short Retry-After does not cut the backoff


@pytest.mark.parametrize("seed", range(5))
def test_webhook_backoff_doubles_per_attempt_within_its_jitter_band_up_to_the_cap(seed):
    random.seed(seed)
    policy = DeliveryPolicy(backoff_base=30.0, backoff_cap=600.0)
    for attempt in range(1, 12):
        low, high = band(30.0, attempt, 600.0)
        assert low + SLACK <= policy.backoff.delay(attempt, None) <= high - SLACK, attempt
    assert policy.backoff.delay(1, 45.0) >= 45.0
    assert policy.backoff.delay(1, 10_000.0) == 600.0               # Retry-After is honoured up to the cap only
    assert policy.backoff.delay(5, 1.0) >= 240.0


def test_sms_retries_wait_twice_as_long_each_time_until_max_attempts(conn, db_url):
    org = ensure_organization(conn, "acme")
    settings = dataclasses.replace(SmsSettings.from_env("twilio"), rate=1000.0, concurrency=1, max_attempts=4,
                                   backoff_base_s=60.0, backoff_cap_s=3600.0)
    enqueue_sms(conn, [NewMessage("announcement:1", "announcement", org, "+919876543210", "hello")])
    with FakeTwilio() as fake:
        fake.fail_next(500, times=10)
        provider = TwilioProvider(fake.base_url, ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER)
        for attempt in range(1, 5):
            dispatch(lambda: connect(db_url), provider, settings=settings, wait_for_retries=False)
            row = conn.execute("SELECT status, attempts, extract(epoch FROM next_attempt_at - updated_at) AS wait "
                               "FROM sms_messages").fetchone()
            assert row["attempts"] == attempt
            if attempt == settings.max_attempts:
                assert row["status"] == "failed"
                break
            low, high = band(60.0, attempt, 3600.0)
            assert row["status"] == "queued" and low <= float(row["wait"]) <= high, (attempt, row)
            dispatch(lambda: connect(db_url), provider, settings=settings, wait_for_retries=False)
            assert conn.execute("SELECT attempts FROM sms_messages").fetchone()["attempts"] == attempt  # not due yet
            conn.execute("UPDATE sms_messages SET next_attempt_at = clock_timestamp()")  # the wait passes
        assert len(fake.messages) == 0


def test_webhook_retries_back_off_and_stop_at_the_end_of_the_retry_window(conn, monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    org = ensure_organization(conn, "acme")
    policy = DeliveryPolicy(timeout=2.0, backoff_base=60.0, backoff_cap=3600.0, breaker_threshold=100,
                            retry_window=timedelta(minutes=10))
    with WebhookReceiver() as receiver:
        receiver.answer(500)
        register_webhook(conn, org, {"url": receiver.url(), "events": ["flag.opened"]})
        enqueue_deliveries(conn, [{"organization_id": org, "event": "flag.opened", "event_key": "k", "data": {}}],
                           policy)
        for attempt in range(1, 10):
            deliver_due(conn, policy)
            row = conn.execute("""SELECT status, attempts, last_error, next_attempt_at <= give_up_at AS in_window,
                                         extract(epoch FROM next_attempt_at - updated_at) AS wait
                                    FROM webhook_deliveries""").fetchone()
            assert row["attempts"] == attempt
            low, high = band(60.0, attempt, 3600.0)
            assert low <= float(row["wait"]) <= high, (attempt, row)
            if not row["in_window"]:
                assert row["status"] == "failed" and "retry window ended" in row["last_error"]
                break
            assert row["status"] == "queued"
            deliver_due(conn, policy)
            assert len(receiver.requests) == attempt  # not due yet: nothing sent early
            # The wait passes: the delivery falls due and the window's end comes as much closer.
            conn.execute("""UPDATE webhook_deliveries SET give_up_at = give_up_at - (next_attempt_at - now()),
                                   next_attempt_at = now()""")
        # 10 minutes hold attempts after 0, 30-60, 90-180 and 210-420 s: the 4th or 5th attempt is the last.
        assert attempt in (4, 5)
        deliver_due(conn, policy)
        assert len(receiver.requests) == attempt


# --- validation's revisit window and which timestamp closes flags --------------------------------------

RULES = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
"""


@pytest.fixture
def rules(client, admin_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", RULES)


def post(client, key, savings: int) -> str:
    body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": savings})
    resp = client.post("/api/v1/forms/household-survey/responses", json=body, headers=auth(key))
    assert resp.status_code == 201
    return body["submission_id"]


def flags(client, key, status="open") -> dict[str, str | None]:
    items = client.get(f"/api/v1/forms/household-survey/flags?status={status}", headers=auth(key)).get_json()["items"]
    return {f["submission_id"]: f["close_reason"] for f in items}


def test_an_edit_of_an_old_response_closes_its_flag(client, conn, admin_key, collector_key, rules):
    sid = post(client, collector_key, savings=500)
    validate_slug(conn, "household-survey")
    assert flags(client, admin_key) == {sid: None}
    # A day passes: the response and its flag were made yesterday, the watermark is yesterday's run.
    conn.execute("UPDATE responses SET received_at = received_at - interval '1 day', "
                 "updated_at = updated_at - interval '1 day'")
    conn.execute("UPDATE response_revisions SET created_at = created_at - interval '1 day'")
    conn.execute("UPDATE validation_watermarks SET validated_through = validated_through - interval '1 day'")
    conn.execute("UPDATE flags SET opened_at = opened_at - interval '1 day'")
    validate_slug(conn, "household-survey")
    assert flags(client, admin_key) == {sid: None}  # nothing changed, nothing closed

    fixed = client.patch(f"/api/v1/forms/household-survey/responses/{sid}", headers=auth(collector_key),
                       json={"answers": {"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": 50}})
    assert fixed.status_code == 200 and fixed.get_json()["revision"] == 2
    [run] = validate_slug(conn, "household-survey")
    assert run.checked == 1 and run.closed == {"passed": 1}
    assert flags(client, admin_key) == {}
    assert flags(client, admin_key, "closed") == {sid: "passed"}


def test_a_response_committed_late_within_the_revisit_window_is_still_validated(client, conn, admin_key,
                                                                                 collector_key, rules):
    validate_slug(conn, "household-survey")  # the watermark: now, less the revisit window
    late = post(client, collector_key, savings=500)
    too_old = post(client, collector_key, savings=600)
    # Stamped before the run but committed after it (a slow ingestion transaction): 90 s ago is within the
    # 2-minute window and is checked; 3 minutes ago is before it, already past for the watermark.
    conn.execute("UPDATE responses SET updated_at = now() - interval '90 seconds' WHERE submission_id = %s", (late,))
    conn.execute("UPDATE responses SET updated_at = now() - interval '3 minutes' WHERE submission_id = %s", (too_old,))
    [run] = validate_slug(conn, "household-survey")
    assert run.checked == 1 and not run.revalidated_all
    assert flags(client, admin_key) == {late: None}
    watermark = conn.execute("SELECT extract(epoch FROM now() - validated_through) AS behind "
                             "FROM validation_watermarks").fetchone()["behind"]
    assert 119 <= float(watermark) <= 170  # 2 minutes, and the seconds this test itself took

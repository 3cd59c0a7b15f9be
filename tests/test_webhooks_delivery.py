"""Webhook deliveries against a real local HTTP receiver: signing, retries, timeouts, caps, circuit breaker."""

import re
import time
from datetime import timedelta

import pytest

from fieldpipe.webhooks.delivery import DeliveryPolicy, _claim, deliver_due, enqueue
from fieldpipe.webhooks.registry import register_webhook
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.webhook_receiver import WebhookReceiver

# Short timings so the suite stays fast; the production defaults are in DeliveryPolicy.
FAST = DeliveryPolicy(timeout=1.0, backoff_base=0.05, backoff_cap=0.2, breaker_threshold=100)


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def organization_id(conn):
    return conn.execute("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme') RETURNING id").fetchone()["id"]


def register(conn, organization_id, url, events=("flag.opened", "flag.resolved"), **kwargs):
    return register_webhook(conn, organization_id, {"url": url, "events": list(events)}, **kwargs)


def event(organization_id, key="flag.opened:1:1", kind="flag.opened"):
    return {"organization_id": organization_id, "event": kind, "event_key": key,
            "data": {"form": "household-survey", "submission_id": "0b3c", "revision": 1}}


def delivery(conn, webhook_id=None):
    return conn.execute("SELECT * FROM webhook_deliveries WHERE %s::bigint IS NULL OR webhook_id = %s ORDER BY id",
                        (webhook_id, webhook_id)).fetchall()


def attempts(conn):
    return conn.execute("SELECT * FROM webhook_attempts ORDER BY delivery_id, attempt").fetchall()


def deliver_until(conn, done, policy=FAST, seconds=5.0, **kwargs):
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "gave up waiting"
        deliver_due(conn, policy, **kwargs)
        time.sleep(0.05)


def test_signed_delivery_arrives_once_and_reruns_add_nothing(conn, organization_id, receiver):
    hook = register(conn, organization_id, receiver.url())
    assert enqueue(conn, [event(organization_id)]) == 1
    assert enqueue(conn, [event(organization_id)]) == 0  # the same fact produced again
    counts = deliver_due(conn, FAST)
    assert counts["delivered"] == 1
    deliver_due(conn, FAST)
    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    assert verify_signature(hook["secret"], request.headers[SIGNATURE_HEADER], request.body)
    assert not verify_signature("whsec_someone-else", request.headers[SIGNATURE_HEADER], request.body)
    body = request.json()
    assert body["id"] == "flag.opened:1:1" and body["type"] == "flag.opened"
    assert body["data"]["form"] == "household-survey"
    assert request.headers["Fieldpipe-Event"] == "flag.opened"
    assert request.headers["Fieldpipe-Event-Id"] == "flag.opened:1:1"
    [row] = delivery(conn)
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_status_code"] == 200
    [attempt] = attempts(conn)
    assert attempt["outcome"] == "delivered" and attempt["status_code"] == 200 and attempt["duration_ms"] >= 0


def test_only_webhooks_wanting_the_event_get_it(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url("/opened"), events=["flag.opened"])
    register(conn, organization_id, receiver.url("/resolved"), events=["flag.resolved"])
    enqueue(conn, [event(organization_id, "flag.resolved:1:2", "flag.resolved")])
    deliver_due(conn, FAST)
    assert [r.path for r in receiver.requests] == ["/resolved"]


def test_receiver_down_then_erroring_gets_the_delivery_once_it_is_back(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    receiver.stop()
    deliver_due(conn, FAST)
    [row] = delivery(conn)
    assert row["status"] == "queued" and row["next_attempt_at"] > row["updated_at"] - timedelta(seconds=1)
    receiver.start()
    receiver.answer(503)
    deliver_until(conn, lambda: len(receiver.requests) >= 1)
    assert delivery(conn)[0]["status"] == "queued"
    receiver.answer(200)
    deliver_until(conn, lambda: delivery(conn)[0]["status"] == "delivered")
    log = attempts(conn)
    assert log[0]["status_code"] is None and "Connection" in log[0]["error"]
    assert [a["outcome"] for a in log][-1] == "delivered"
    assert {a["status_code"] for a in log[1:-1]} <= {503}
    assert [r.body for r in receiver.requests].count(receiver.requests[-1].body) == len(receiver.requests)


@pytest.mark.parametrize("status, outcome", [(400, "failed"), (404, "failed"), (410, "failed"), (300, "failed"),
                                             (301, "failed"), (408, "queued"), (429, "queued"), (500, "queued"), (502, "queued")])
def test_which_answers_are_retried(conn, organization_id, receiver, status, outcome):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    receiver.answer(status)
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    [row] = delivery(conn)
    assert row["status"] == outcome and row["attempts"] == 1 and row["last_status_code"] == status
    assert f"HTTP {status}" in row["last_error"]


def test_retry_after_is_honoured(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    receiver.answer(429, retry_after="120")
    deliver_due(conn, DeliveryPolicy(timeout=1.0, backoff_base=1.0))
    [row] = delivery(conn)
    assert row["next_attempt_at"] - row["updated_at"] >= timedelta(seconds=119)


def test_slow_receiver_is_cut_off_at_the_total_timeout(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    receiver.answer(200, delay=10)
    started = time.monotonic()
    deliver_due(conn, DeliveryPolicy(timeout=0.5))
    assert time.monotonic() - started < 2.5
    [row] = delivery(conn)
    assert row["status"] == "queued" and "timed out after 0.5 s" in row["last_error"]
    assert 400 <= attempts(conn)[0]["duration_ms"] < 2000


def test_huge_answer_is_read_only_up_to_the_cap(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    receiver.answer(200, body_bytes=500 * 1024 * 1024)
    started = time.monotonic()
    deliver_due(conn, DeliveryPolicy(timeout=5.0, max_response_bytes=64 * 1024))
    assert time.monotonic() - started < 3
    assert delivery(conn)[0]["status"] == "delivered"


def test_retrying_stops_when_the_window_ends(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)], DeliveryPolicy(retry_window=timedelta(seconds=1)))
    receiver.answer(500)
    counts = deliver_due(conn, DeliveryPolicy(timeout=1.0, backoff_base=5.0))
    [row] = delivery(conn)
    assert row["status"] == "failed" and "retry window ended" in row["last_error"]
    assert (counts["failed"], counts["retry"]) == (1, 0)  # counted and logged as what it became


def test_dead_endpoint_is_backed_off_as_a_whole_and_does_not_hold_up_others(conn, organization_id, receiver):
    dead = WebhookReceiver()  # never started: connection refused
    dead_hook = register(conn, organization_id, dead.url())
    live_hook = register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id, f"flag.opened:{n}:1") for n in range(12)])
    # The circuit stays open 1-2 s (jitter): long enough for the live endpoint's 6 batches on a loaded machine.
    policy = DeliveryPolicy(timeout=1.0, backoff_base=0.01, backoff_cap=0.01, breaker_threshold=3,
                            breaker_base=2.0, breaker_cap=2.0, batch_size=4, per_endpoint=2)
    deliver_due(conn, policy)
    assert len(receiver.requests) == 12
    assert all(r["status"] == "delivered" for r in delivery(conn, live_hook["id"]))
    dead_attempts = sum(r["attempts"] for r in delivery(conn, dead_hook["id"]))
    assert 3 <= dead_attempts <= 4  # stopped once the circuit opened, not 12 or more
    [listed] = [h for h in conn.execute("SELECT * FROM webhooks ORDER BY id").fetchall() if h["id"] == dead_hook["id"]]
    assert listed["open_until"] is not None and listed["consecutive_failures"] >= 3
    deliver_due(conn, policy)  # still open: nothing is tried
    assert sum(r["attempts"] for r in delivery(conn, dead_hook["id"])) == dead_attempts
    time.sleep(2.1)
    deliver_due(conn, policy)  # half open: one probe, which fails and opens the circuit again
    assert sum(r["attempts"] for r in delivery(conn, dead_hook["id"])) == dead_attempts + 1
    dead.start()
    try:
        time.sleep(2.1)
        deliver_due(conn, policy)  # the probe succeeds, the circuit closes, the backlog drains
        assert all(r["status"] == "delivered" for r in delivery(conn, dead_hook["id"]))
        assert len(dead.requests) == 12
    finally:
        dead.stop()


def test_delivery_time_check_refuses_an_address_that_is_no_longer_allowed(conn, organization_id, receiver, monkeypatch):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    monkeypatch.delenv(ALLOW_NETS_ENV)
    deliver_due(conn, FAST)
    [row] = delivery(conn)
    assert row["status"] == "failed" and "loopback" in row["last_error"]
    assert receiver.requests == []


def test_connection_is_pinned_to_the_checked_address(conn, organization_id, receiver):
    # The name does not exist in any DNS: the request can only arrive if the sender connects to the
    # address that was checked, while still naming the host in the Host header.
    resolver = lambda host, port: ["127.0.0.1"]  # noqa: E731
    register(conn, organization_id, f"http://hooks.fieldpipe.invalid:{receiver.port}/x", resolver=resolver)
    enqueue(conn, [event(organization_id)])
    deliver_due(conn, FAST, resolver=resolver)
    [request] = receiver.requests
    assert request.headers["Host"] == f"hooks.fieldpipe.invalid:{receiver.port}"
    # the same name rebound to a metadata address at delivery time is refused
    enqueue(conn, [event(organization_id, "flag.opened:2:1")])
    deliver_due(conn, FAST, resolver=lambda host, port: ["169.254.169.254"])
    assert delivery(conn)[1]["status"] == "failed" and "metadata" in delivery(conn)[1]["last_error"]


def test_concurrent_claims_never_take_the_same_delivery(conn, organization_id, receiver, db_url):
    from fieldpipe.db import connect

    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id, f"flag.opened:{n}:1") for n in range(10)])
    policy = DeliveryPolicy(batch_size=7, per_endpoint=100)
    with connect(db_url) as first, connect(db_url) as second:
        first.execute("SELECT 1")  # an open transaction: the first claim stays uncommitted, its rows locked
        taken_first = _claim(first, policy)
        taken_second = _claim(second, policy)  # would wait on the locks without SKIP LOCKED
        first.commit()
    ids_first, ids_second = {r["id"] for r in taken_first}, {r["id"] for r in taken_second}
    assert not ids_first & ids_second, (ids_first, ids_second)
    assert len(ids_first) == 7 and len(ids_second) == 3


def test_abandoned_sending_delivery_is_taken_again_after_its_lease(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id)])
    conn.execute("UPDATE webhook_deliveries SET status = 'sending', attempts = 1, lease_until = now() - interval '1 s'")
    deliver_due(conn, FAST)
    [row] = delivery(conn)
    assert row["status"] == "delivered" and row["attempts"] == 2


def test_one_endpoint_gets_no_more_than_its_rate(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id, key=f"e{i}") for i in range(6)])
    started = time.monotonic()
    deliver_due(conn, DeliveryPolicy(timeout=1.0, endpoint_rate=5.0, per_endpoint=10))
    assert [r["status"] for r in delivery(conn)] == ["delivered"] * 6
    assert time.monotonic() - started >= 5 / 5.0 - 0.01  # six requests at 5 a second: the last one a second in


def test_the_run_logs_what_it_did_in_numbers(conn, organization_id, receiver, caplog):
    with WebhookReceiver() as failing:
        failing.answer(500)
        register(conn, organization_id, receiver.url())
        register(conn, organization_id, failing.url())
        enqueue(conn, [event(organization_id)])
        with caplog.at_level("INFO", logger="fieldpipe.webhooks"):  # the retry does not fall due again in this run
            deliver_due(conn, DeliveryPolicy(timeout=1.0, backoff_base=60, backoff_cap=60, breaker_threshold=100))
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("webhook deliveries in ")]
    assert re.fullmatch(r"webhook deliveries in \d+\.\d s: 2 attempted, 1 delivered, 1 to retry, 0 failed, "
                        r"0 expired behind an open circuit", line), line


def test_deliveries_share_kept_alive_connections_and_each_arrives_once(conn, organization_id, receiver):
    register(conn, organization_id, receiver.url())
    enqueue(conn, [event(organization_id, key=f"e{i}") for i in range(60)])
    policy = DeliveryPolicy(timeout=2.0, batch_size=20, per_endpoint=20, concurrency=3, endpoint_rate=10_000)
    assert deliver_due(conn, policy)["delivered"] == 60
    assert sorted(r.headers["Fieldpipe-Event-Id"] for r in receiver.requests) == sorted(f"e{i}" for i in range(60))
    assert len({r.peer for r in receiver.requests}) <= 3  # a connection per thread, not one per delivery
    assert {a["outcome"] for a in attempts(conn)} == {"delivered"} and len(attempts(conn)) == 60


def test_a_dead_endpoints_rest_of_the_batch_goes_back_to_the_queue_untried(conn, organization_id):
    dead = WebhookReceiver()  # never started: connection refused
    register(conn, organization_id, dead.url())
    enqueue(conn, [event(organization_id, key=f"e{i}") for i in range(20)])
    policy = DeliveryPolicy(timeout=1.0, breaker_threshold=3, batch_size=20, per_endpoint=20, concurrency=1)
    counts = deliver_due(conn, policy)
    assert (counts["attempted"], counts["retry"]) == (3, 3)  # the circuit is open after them: nothing else tried
    rows = delivery(conn)
    assert sorted((r["status"], r["attempts"]) for r in rows) == [("queued", 0)] * 17 + [("queued", 1)] * 3
    assert all(r["lease_until"] is None for r in rows) and len(attempts(conn)) == 3

"""Events for the pipelines (issue 24): the database NOTIFYs on commit, the trigger turns that into few events.

Against the real test PostgreSQL: the notifications the ingestion paths send (and the ones they must not),
then the Airflow event trigger's async generator, run as the triggerer runs it, then the DAGs' schedules.
"""

from __future__ import annotations

import asyncio
import logging
import time

import airflow.sdk  # noqa: F401  (importing Airflow puts the plugins folder, with triggers/, on sys.path)
import pytest

from fieldpipe.db import connect
from fieldpipe.orgs import ensure_organization
from fieldpipe.pipelines import events
from fieldpipe.pipelines.connections import app_database_async
from fieldpipe.pipelines.names import EVENTS_CHANNEL
from fieldpipe.retry import Backoff
from fieldpipe.sms.outbox import NewMessage, enqueue
from tests.helpers import auth, put_rules, submission

RECEIPTS = {"sms_receipt": {"phone_question": "phone", "template": "Thank you {name}"}}
WAIT_S = 60  # generous: a loaded machine is slow, a working one answers in milliseconds


@pytest.fixture
def listener(clean_db):
    """`heard(action) -> [payloads]`: what the channel carried while `action()` ran, in commit order.

    Markers notified before and after the action bound the list, so "nothing was sent" needs no waiting.
    """
    with connect(clean_db, autocommit=True) as listening, connect(clean_db, autocommit=True) as marking:
        listening.execute(f"LISTEN {EVENTS_CHANNEL}")

        def until_marker(marker: str) -> list[str]:
            marking.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, marker))
            payloads: list[str] = []
            deadline = time.monotonic() + WAIT_S
            while marker not in payloads:
                assert time.monotonic() < deadline, f"the marker never arrived; heard {payloads}"
                payloads += [n.payload for n in listening.notifies(timeout=1)]
            return payloads[:payloads.index(marker)]

        def heard(action) -> list[str]:
            until_marker("before")  # what earlier steps of the test sent
            action()
            return until_marker("after")

        yield heard


def post(client, key, body, slug="household-survey", expect=201):
    resp = client.post(f"/api/v1/forms/{slug}/responses", json=body, headers=auth(key))
    assert resp.status_code == expect, resp.get_json()
    return resp


# --- what the database announces ------------------------------------------------------------------------

def test_a_stored_response_announces_responses_and_its_receipt_the_outbox(client, make_form, admin_key, listener):
    make_form(settings=RECEIPTS)
    assert listener(lambda: post(client, admin_key, submission())) == ["responses", "sms_outbox"]
    make_form(slug="no-receipts")
    assert listener(lambda: post(client, admin_key, submission(), slug="no-receipts")) == ["responses"]


def test_a_batch_is_one_notification_per_topic(client, make_form, admin_key, listener):
    make_form(settings=RECEIPTS)
    items = [submission() for _ in range(25)]

    def batch():
        resp = client.post("/api/v1/forms/household-survey/responses/batch", json={"items": items},
                           headers=auth(admin_key))
        assert resp.get_json()["summary"]["created"] == 25

    assert listener(batch) == ["responses", "sms_outbox"]


def test_duplicates_refusals_and_rollbacks_announce_nothing(client, make_form, admin_key, listener, clean_db):
    make_form(settings=RECEIPTS)
    body = submission()
    post(client, admin_key, body)
    assert listener(lambda: post(client, admin_key, body, expect=200)) == []  # a retry of the same post
    bad = submission(answers={**body["answers"], "city": "atlantis"})
    assert listener(lambda: post(client, admin_key, bad, expect=422)) == []

    def rolled_back():
        with connect(clean_db) as conn:
            org = ensure_organization(conn, "acme")
            enqueue(conn, [NewMessage("announcement:x", "announcement", org, "+919876543210", "hello")])
            conn.rollback()

    assert listener(rolled_back) == []


def test_edits_and_new_rules_announce_responses(client, make_form, admin_key, listener):
    make_form()
    body = submission()
    post(client, admin_key, body)

    def edit():
        resp = client.patch(f"/api/v1/forms/household-survey/responses/{body['submission_id']}",
                            json={"answers": {**body["answers"], "monthly_income": 1}}, headers=auth(admin_key))
        assert resp.status_code == 200, resp.get_json()

    assert listener(edit) == ["responses"]
    rules = """
        rules:
          - id: savings_le_income
            expression: "monthly_savings <= monthly_income"
            message: Savings cannot exceed income
    """
    assert listener(lambda: put_rules(client, admin_key, "household-survey", rules)) == ["responses"]


def test_an_operator_retry_announces_the_outbox_a_dispatcher_requeue_does_not(client, admin_key, conn, listener):
    org = ensure_organization(conn, "acme")
    enqueue(conn, [NewMessage(f"announcement:{i}", "announcement", org, f"+91987654321{i}", "hi") for i in range(2)])
    failed, sending = [r["id"] for r in conn.execute("SELECT id FROM sms_messages ORDER BY id")]
    conn.execute("UPDATE sms_messages SET status = 'failed' WHERE id = %s", (failed,))
    conn.execute("UPDATE sms_messages SET status = 'sending' WHERE id = %s", (sending,))

    def operator_retry():
        assert client.post(f"/api/v1/messages/{failed}/retry", headers=auth(admin_key)).status_code == 200

    assert listener(operator_retry) == ["sms_outbox"]
    # the dispatcher puts a message back with a later attempt time: nothing is due, nobody is woken
    assert listener(lambda: conn.execute(
        "UPDATE sms_messages SET status = 'queued', next_attempt_at = now() + interval '1 minute' WHERE id = %s",
        (sending,))) == []


# --- the trigger: the triggerer's view ------------------------------------------------------------------

def database_trigger(topic: str, **kwargs):
    from triggers.database_events import DatabaseEventTrigger

    return DatabaseEventTrigger(topic=topic, **kwargs)


async def next_event(stream, timeout: float = WAIT_S):
    return (await asyncio.wait_for(anext(stream), timeout)).payload


def notify(url: str, *payloads: str) -> None:
    """Each payload in its own committed transaction, as separate requests would send them."""
    with connect(url, autocommit=True) as conn:
        for payload in payloads:
            conn.execute("SELECT pg_notify(%s, %s)", (EVENTS_CHANNEL, payload))


def test_a_notification_becomes_a_trigger_event_of_its_topic_only(clean_db):
    async def scenario():
        responses = database_trigger("responses").run()
        outbox = database_trigger("sms_outbox").run()
        # every (re)connection is an event: what was committed while nobody listened is caught up at once
        assert await next_event(responses) == {"topic": "responses", "reason": "listening", "notifications": 0}
        assert (await next_event(outbox))["reason"] == "listening"
        notify(clean_db, "responses")
        assert await next_event(responses) == {"topic": "responses", "reason": "notified", "notifications": 1}
        notify(clean_db, "sms_outbox")
        # the outbox trigger fires; the responses trigger, counting only its topic, has nothing pending
        assert await next_event(outbox) == {"topic": "sms_outbox", "reason": "notified", "notifications": 1}
        notify(clean_db, "responses")
        assert (await next_event(responses))["notifications"] == 1
        await responses.aclose()
        await outbox.aclose()

    asyncio.run(scenario())


def test_the_trigger_round_trips_through_its_serialized_form():
    from airflow._shared.module_loading import import_string  # what the triggerer imports it with

    trigger = database_trigger("sms_outbox", min_interval=3.0)
    classpath, kwargs = trigger.serialize()
    again = import_string(classpath)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert kwargs == {"topic": "sms_outbox", "conn_id": "fieldpipe_db", "channel": EVENTS_CHANNEL, "min_interval": 3.0}


def test_a_malformed_payload_is_ignored_with_a_log_line(clean_db, caplog):
    async def scenario():
        stream = database_trigger("responses").run()
        await next_event(stream)  # listening
        notify(clean_db, '{"topic": "responses"}', "", "responses")
        return await next_event(stream)

    with caplog.at_level(logging.WARNING, logger=events.log.name):
        event = asyncio.run(scenario())
    assert event["notifications"] == 1  # the well-formed one alone
    ignored = [r for r in caplog.records if "names no known topic" in r.getMessage()]
    assert len(ignored) == 2 and all("responses\"" not in r.getMessage() for r in ignored)  # no payload quoted


def test_a_burst_of_commits_makes_a_handful_of_events(clean_db):
    burst = 500

    async def scenario():
        stream = database_trigger("responses", min_interval=1.0).run()
        await next_event(stream)  # listening
        started = time.monotonic()
        notify(clean_db, *["responses"] * burst)
        counts = []
        while sum(counts) < burst:
            counts.append((await next_event(stream))["notifications"])
        await stream.aclose()
        return counts, time.monotonic() - started

    counts, seconds = asyncio.run(scenario())
    assert sum(counts) == burst
    # the first at once, then at most one a second for as long as the burst lasted
    assert len(counts) <= 2 + seconds / 1.0, (counts, seconds)
    assert len(counts) < 10


def test_a_lost_connection_is_reopened_and_announced(clean_db, caplog):
    async def scenario():
        pids = []

        async def connect_and_note():
            conn = await app_database_async()
            pids.append(conn.info.backend_pid)
            return conn

        stream = events.coalesced_events(connect_and_note, "sms_outbox", backoff=Backoff(base=0.1, cap=0.2))
        assert (await anext(stream))["reason"] == "listening"
        with connect(clean_db, autocommit=True) as admin:  # what a database restart does to the listener
            admin.execute("SELECT pg_terminate_backend(%s)", (pids[0],))
        notify(clean_db, "sms_outbox")
        again = await asyncio.wait_for(anext(stream), WAIT_S)
        await stream.aclose()
        return again, pids

    with caplog.at_level(logging.WARNING, logger=events.log.name):
        again, pids = asyncio.run(scenario())
    assert again["reason"] == "listening" and len(pids) == 2 and pids[0] != pids[1]
    assert any("reconnecting" in r.getMessage() for r in caplog.records)


def test_an_unknown_topic_is_refused_before_listening():
    async def scenario():
        await anext(events.coalesced_events(app_database_async, "respones"))

    with pytest.raises(ValueError, match="respones"):
        asyncio.run(scenario())


# --- the DAGs: scheduled on the watched assets and their cron --------------------------------------------

@pytest.mark.parametrize("dag_id, cron, topic", [
    ("validate_responses", "*/3 * * * *", "responses"),
    ("send_sms", "* * * * *", "sms_outbox"),
])
def test_event_driven_dags_keep_their_cron_and_one_run_at_a_time(dag_id, cron, topic):
    from airflow.sdk import AssetOrTimeSchedule
    from triggers.database_events import DatabaseEventTrigger

    from tests.dags.harness import load_dag

    dag = load_dag(dag_id)
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert dag.timetable.timetable.expression == cron
    assets = dag.timetable.asset_condition.objects
    watchers = [w for asset in assets for w in asset.watchers]
    assert [type(w.trigger) for w in watchers] == [DatabaseEventTrigger]
    assert watchers[0].trigger.topic == topic
    assert dag.max_active_runs == 1

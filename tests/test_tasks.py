"""Post-submission tasks per form (issue 16): the task list API, the ledger, async runs, replay, receipts,
sheets and webhooks through tasks, against real PostgreSQL and a real local webhook receiver."""

import datetime as dt
import json
import re
import time

import pytest

from fieldpipe.config import TaskSettings
from fieldpipe.tasks.replay import start_pending
from fieldpipe.tasks.runner import run_due, run_kind
from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from tests.helpers import auth, submission
# Webhook tasks post to a receiver on a loopback port (autouse `loopback_allowed`).
from tests.test_webhooks_delivery import loopback_allowed, receiver  # noqa: F401 (fixtures)

FAST = DeliveryPolicy(timeout=2.0, backoff_base=0.05, backoff_cap=0.2, breaker_threshold=100, endpoint_rate=1000)
TASKS = "/api/v1/forms/household-survey/tasks"


def errors(resp):
    assert resp.status_code == 422, resp.get_json()
    assert resp.headers["Content-Type"] == "application/problem+json"
    return [(e["field"], e["code"]) for e in resp.get_json()["errors"]]


def post(client, key, **overrides):
    resp = client.post("/api/v1/forms/household-survey/responses", json=submission(**overrides), headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def add_task(client, key, kind, config, slug="household-survey", **extra):
    resp = client.post(f"/api/v1/forms/{slug}/tasks", json={"kind": kind, "config": config, **extra},
                       headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def deliver_all(conn, receiver, expected, seconds=30.0):
    deadline = time.monotonic() + seconds
    while len(receiver.requests) < expected:
        assert time.monotonic() < deadline, f"{len(receiver.requests)} of {expected} delivered"
        deliver_due(conn, FAST)
        time.sleep(0.05)


# --- the task list ---------------------------------------------------------------------------------------------

def test_a_task_is_installed_listed_changed_and_removed(client, admin_key, make_form):
    make_form()
    created = add_task(client, admin_key, "sheet_export", {"spreadsheet_id": "abc"})
    assert (created["kind"], created["mode"], created["enabled"], created["events"]) == (
        "sheet_export", "async", True, ["response.created", "response.updated"])
    url = f"{TASKS}/{created['id']}"
    assert client.get(url, headers=auth(admin_key)).get_json() == created
    changed = client.patch(url, json={"enabled": False}, headers=auth(admin_key)).get_json()
    assert (changed["enabled"], changed["config"]) == (False, {"spreadsheet_id": "abc"})
    listed = client.get(TASKS, headers=auth(admin_key)).get_json()
    assert [t["id"] for t in listed["items"]] == [created["id"]] and listed["next_cursor"] is None
    assert client.delete(url, headers=auth(admin_key)).status_code == 204
    assert client.get(url, headers=auth(admin_key)).status_code == 404


def test_the_old_settings_keys_are_the_forms_receipt_and_sheet_tasks(client, admin_key, make_form):
    receipt = {"phone_question": "phone", "template": "Thanks {name}"}
    form = make_form(settings={"sms_receipt": receipt, "sheet": {"spreadsheet_id": "s1"}, "imports": {"receipts": True}})
    assert form["settings"] == {"sms_receipt": receipt, "sheet": {"spreadsheet_id": "s1"}, "imports": {"receipts": True}}
    tasks = client.get(TASKS, headers=auth(admin_key)).get_json()["items"]
    assert [(t["kind"], t["config"], t["enabled"]) for t in tasks] == [
        ("sms_receipt", receipt, True), ("sheet_export", {"spreadsheet_id": "s1"}, True)]
    # Settings replaced without the sheet: its task stops, as the setting used to; the receipt task changes.
    new_receipt = {"phone_question": "phone", "template": "Dhanyavad {name}"}
    resp = client.patch("/api/v1/forms/household-survey", json={"settings": {"sms_receipt": new_receipt}},
                        headers=auth(admin_key))
    assert resp.get_json()["settings"] == {"sms_receipt": new_receipt}
    tasks = client.get(TASKS, headers=auth(admin_key)).get_json()["items"]
    assert [(t["kind"], t["config"], t["enabled"]) for t in tasks] == [
        ("sms_receipt", new_receipt, True), ("sheet_export", {"spreadsheet_id": "s1"}, False)]
    # And a task disabled through the API no longer shows as a setting.
    client.patch(f"{TASKS}/{tasks[0]['id']}", json={"enabled": False}, headers=auth(admin_key))
    assert client.get("/api/v1/forms/household-survey", headers=auth(admin_key)).get_json()["settings"] == {}


@pytest.mark.parametrize("body, expected", [
    ({"kind": "nope"}, [("kind", "unknown_kind")]),
    ({}, [("kind", "required")]),
    ({"kind": ""}, [("kind", "required")]),
    ({"kind": "sms_receipt", "config": {"phone_question": "name", "template": "Hi"}},
     [("config.phone_question", "unknown_question")]),  # a text question, not a phone one
    ({"kind": "sms_receipt", "config": {"phone_question": "nope", "template": ""}},
     [("config.template", "minLength")]),
    ({"kind": "sms_receipt", "config": {"template": "Hi", "extra": 1}},
     [("config", "additionalProperties"), ("config", "required")]),
    ({"kind": "sheet_export", "config": {"spreadsheet_id": 5, "worksheet": ""}},
     [("config.spreadsheet_id", "type"), ("config.worksheet", "minLength")]),
    ({"kind": "sheet_export", "config": "abc"}, [("config", "type")]),
    ({"kind": "webhook", "config": {"url": "http://127.0.0.1:1/x", "events": ["response.deleted"]}},
     [("config.events[0]", "enum")]),
    ({"kind": "webhook", "config": {"url": "ftp://example.org/x", "events": ["response.created"]}},
     [("config.url", "malformed")]),
    ({"kind": "webhook", "config": {"url": "http://127.0.0.1:1/x", "events": []}, "mode": "sync"},
     [("mode", "fixed_by_kind"), ("config.events", "minItems")]),
    ({"kind": "sheet_export", "config": {"spreadsheet_id": "a"}, "enabled": "yes", "colour": 1},
     [("colour", "unknown_field"), ("enabled", "type")]),
])
def test_a_bad_task_is_422_with_every_problem_and_stores_nothing(client, admin_key, make_form, body, expected):
    make_form()
    assert sorted(errors(client.post(TASKS, json=body, headers=auth(admin_key)))) == sorted(expected)
    assert client.get(TASKS, headers=auth(admin_key)).get_json()["items"] == []


def test_a_bad_change_is_422_and_changes_nothing(client, admin_key, make_form):
    make_form()
    task = add_task(client, admin_key, "sms_receipt", {"phone_question": "phone", "template": "Hi"})
    url = f"{TASKS}/{task['id']}"
    for body, expected in (({"config": {"phone_question": "city", "template": "Hi"}}, [("config.phone_question", "unknown_question")]),
                           ({"kind": "webhook"}, [("kind", "immutable")]),
                           ({"enabled": None}, [("enabled", "type")])):
        assert errors(client.patch(url, json=body, headers=auth(admin_key))) == expected
    assert client.get(url, headers=auth(admin_key)).get_json() == task
    # one receipt task per form: its dedupe key is the response's
    again = client.post(TASKS, json={"kind": "sms_receipt", "config": {"phone_question": "phone", "template": "X"}},
                        headers=auth(admin_key))
    assert errors(again) == [("kind", "one_per_form")]


def test_tasks_are_for_admins_of_the_forms_organization(client, admin_key, collector_key, other_org_admin_key,
                                                        make_form):
    make_form()
    task = add_task(client, admin_key, "sheet_export", {"spreadsheet_id": "abc"})
    assert client.get(TASKS, headers=auth(collector_key)).status_code == 403
    assert client.post(TASKS, json={"kind": "sheet_export", "config": {"spreadsheet_id": "x"}},
                       headers=auth(collector_key)).status_code == 403
    # another organization sees neither the form nor its task
    for resp in (client.get(f"{TASKS}/{task['id']}", headers=auth(other_org_admin_key)),
                 client.patch(f"{TASKS}/{task['id']}", json={"enabled": False}, headers=auth(other_org_admin_key)),
                 client.delete(f"{TASKS}/{task['id']}", headers=auth(other_org_admin_key))):
        assert resp.status_code == 404
    # nor through its own form of the same name
    make_form(key=other_org_admin_key)
    assert client.get(f"{TASKS}/{task['id']}", headers=auth(other_org_admin_key)).status_code == 404
    assert client.get(f"{TASKS}/{task['id']}", headers=auth(admin_key)).get_json()["enabled"] is True


# --- webhooks through tasks, the ledger and replay -------------------------------------------------------------

def test_a_webhook_task_gets_new_and_edited_responses_once_each_signed(client, admin_key, make_form, conn, receiver):
    make_form()
    task = add_task(client, admin_key, "webhook", {"url": receiver.url(), "events": ["response.created",
                                                                                    "response.updated"]})
    assert task["secret"].startswith("whsec_")
    assert "secret" not in client.get(f"{TASKS}/{task['id']}", headers=auth(admin_key)).get_json()
    first = post(client, admin_key)
    client.patch(f"/api/v1/forms/household-survey/responses/{first['submission_id']}",
                 json={"answers": {**first["answers"], "monthly_income": 30000}}, headers=auth(admin_key))
    assert run_due(conn)["webhook"]["done"] == 2
    assert run_due(conn) == {}  # nothing is run twice
    deliver_all(conn, receiver, 2)
    deliver_due(conn, FAST)
    bodies = sorted((r.json() for r in receiver.requests), key=lambda b: b["data"]["revision"])
    assert [(b["type"], b["data"]["revision"], b["data"]["answers"]["monthly_income"]) for b in bodies] == [
        ("response.created", 1, 20000), ("response.updated", 2, 30000)]
    # timestamps as the API writes them (ISO 8601), not Python's str() of a datetime
    shown = client.get(f"/api/v1/forms/household-survey/responses/{first['submission_id']}/revisions",
                       headers=auth(admin_key)).get_json()["items"]
    assert [b["data"]["submitted_at"] for b in bodies] == [r["submitted_at"] for r in sorted(
        shown, key=lambda r: r["revision"])] == [first["submitted_at"]] * 2
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", b["data"][field])
               for b in bodies for field in ("submitted_at", "received_at"))
    for request in receiver.requests:
        assert verify_signature(task["secret"], request.headers[SIGNATURE_HEADER], request.body)
    runs = client.get(f"{TASKS}/{task['id']}/runs", headers=auth(admin_key)).get_json()["items"]
    assert [(r["revision"], r["status"], r["attempts"]) for r in runs] == [(1, "done", 1), (2, "done", 1)]
    assert all(r["outcome"]["delivery_id"] for r in runs)
    # the organization's own webhooks listing does not show a task's endpoint
    assert client.get("/api/v1/webhooks", headers=auth(admin_key)).get_json()["items"] == []


def test_a_new_webhook_task_receives_yesterdays_responses_through_replay_exactly_once(
        client, admin_key, make_form, conn, receiver):
    make_form()
    old = [post(client, admin_key) for _ in range(3)]
    later = post(client, admin_key)
    conn.execute("UPDATE responses SET received_at = now() - interval '1 day' WHERE submission_id = ANY (%s::uuid[])",
                 ([r["submission_id"] for r in old],))
    task = add_task(client, admin_key, "webhook", {"url": receiver.url(), "events": ["response.created"]})
    today = post(client, admin_key)  # after the task was added: sent without a replay
    now = dt.datetime.now(dt.timezone.utc)
    day = {"from": (now - dt.timedelta(days=2)).isoformat(), "to": (now - dt.timedelta(hours=12)).isoformat()}
    accepted = client.post(f"{TASKS}/{task['id']}/replay", json=day, headers=auth(admin_key))
    assert accepted.status_code == 202, accepted.get_json()
    replay = accepted.get_json()
    assert (replay["status"], replay["responses"]) == ("pending", 3)
    assert client.get(accepted.headers["Location"], headers=auth(admin_key)).get_json()["status"] == "pending"
    assert start_pending(conn) == [{"replay_id": replay["id"], "queued": 3}]
    run_due(conn)
    deliver_all(conn, receiver, 4)
    progress = client.get(accepted.headers["Location"], headers=auth(admin_key)).get_json()
    assert (progress["status"], progress["runs"]["done"], progress["queued_by_replay"]) == ("done", 3, 3)
    # The same range again, and one that covers every response: only what was never sent goes out.
    everything = {"from": day["from"], "to": (now + dt.timedelta(hours=1)).isoformat()}
    for body in (day, everything):
        assert client.post(f"{TASKS}/{task['id']}/replay", json=body, headers=auth(admin_key)).status_code == 202
    start_pending(conn)
    run_due(conn)
    deliver_all(conn, receiver, 5)
    deliver_due(conn, FAST)
    sent = sorted(r.json()["data"]["submission_id"] for r in receiver.requests)
    assert sent == sorted(r["submission_id"] for r in [*old, later, today])


@pytest.mark.parametrize("body, expected", [
    ({"from": "2026-11-29T00:00:00+05:30"}, [("to", "required")]),
    ({"from": "yesterday", "to": "2026-11-29T00:00:00"}, [("from", "format"), ("to", "timezone")]),
    ({"from": "2026-11-29T00:00:00Z", "to": "2026-11-29T00:00:00Z"}, [("to", "order")]),
    ({"from": "2026-11-29T00:00:00Z", "to": "2026-11-30T00:00:00Z", "since": 1}, [("since", "unknown_field")]),
])
def test_a_bad_replay_is_422_and_queues_nothing(client, admin_key, make_form, conn, body, expected):
    make_form()
    task = add_task(client, admin_key, "sheet_export", {"spreadsheet_id": "abc"})
    resp = client.post(f"{TASKS}/{task['id']}/replay", json=body, headers=auth(admin_key))
    assert resp.status_code == 422, resp.get_json()
    assert [e["field"] for e in resp.get_json()["errors"]] == [f for f, _ in expected]
    assert conn.execute("SELECT count(*) AS n FROM task_replays").fetchone()["n"] == 0


# --- receipts and sheets through tasks -------------------------------------------------------------------------

def test_a_receipt_is_queued_with_the_response_and_recorded_done_in_the_ledger(client, admin_key, make_form, conn):
    make_form()
    task = add_task(client, admin_key, "sms_receipt", {"phone_question": "phone", "template": "Thanks {name}"})
    created = post(client, admin_key)
    post(client, admin_key, answers={**created["answers"], "phone": None})  # no phone answer: skipped
    messages = conn.execute("SELECT recipient, body, status FROM sms_messages").fetchall()
    assert [(m["recipient"], m["body"], m["status"]) for m in messages] == [("+919876543210", "Thanks Asha", "queued")]
    runs = client.get(f"{TASKS}/{task['id']}/runs", headers=auth(admin_key)).get_json()["items"]
    assert [r["status"] for r in runs] == ["done", "skipped"]
    assert run_due(conn) == {}
    # disabled: no receipt; a replay of the first response sends no second SMS (one receipt per response)
    client.patch(f"{TASKS}/{task['id']}", json={"enabled": False}, headers=auth(admin_key))
    post(client, admin_key)
    client.patch(f"{TASKS}/{task['id']}", json={"enabled": True}, headers=auth(admin_key))
    now = dt.datetime.now(dt.timezone.utc)
    client.post(f"{TASKS}/{task['id']}/replay", headers=auth(admin_key),
                json={"from": (now - dt.timedelta(hours=1)).isoformat(), "to": (now + dt.timedelta(hours=1)).isoformat()})
    start_pending(conn)
    assert run_due(conn)["sms_receipt"]["done"] == 1  # the third response, never receipted
    assert conn.execute("SELECT count(*) AS n FROM sms_messages").fetchone()["n"] == 2


def test_a_sheet_task_exports_through_the_ledger(client, admin_key, make_form, conn, tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    make_form()
    task = add_task(client, admin_key, "sheet_export", {"spreadsheet_id": "local", "worksheet": "Rows"})
    posted = [post(client, admin_key) for _ in range(3)]
    assert run_kind(conn, "sheet_export")["done"] == 3
    import openpyxl

    sheet = openpyxl.load_workbook(tmp_path / "exports" / "household-survey.xlsx")["Rows"]
    ids = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert sorted(ids) == sorted(p["submission_id"] for p in posted)
    runs = client.get(f"{TASKS}/{task['id']}/runs?status=done", headers=auth(admin_key)).get_json()["items"]
    assert [r["outcome"] for r in runs] == [{"sheet": "local", "worksheet": "Rows"}] * 3


def test_a_failing_run_is_recorded_retried_and_never_stops_the_other_forms(client, admin_key, make_form, conn,
                                                                          receiver):
    make_form()
    make_form(slug="second")
    dead = add_task(client, admin_key, "sheet_export", {"spreadsheet_id": "x"})
    live = add_task(client, admin_key, "webhook", {"url": receiver.url(), "events": ["response.created"]},
                    slug="second")
    post(client, admin_key)
    resp = client.post("/api/v1/forms/second/responses", json=submission(), headers=auth(admin_key))
    assert resp.status_code == 201
    # the first form's export fails (a configuration stored before it was checked)
    conn.execute("UPDATE form_tasks SET config = config || '{\"cell_limit_share\": \"bad\"}' WHERE id = %s",
                 (dead["id"],))
    settings = TaskSettings(sync_budget_ms=1000, max_attempts=2, batch_size=100, lease_s=60,
                            backoff_base_s=0.0, backoff_cap_s=0.0)
    assert run_kind(conn, "webhook", settings=settings)["done"] == 1
    # retried at once (no backoff here) until out of attempts
    assert run_kind(conn, "sheet_export", settings=settings) == {"done": 0, "skipped": 0, "retry": 1, "failed": 1}
    run = client.get(f"{TASKS}/{dead['id']}/runs", headers=auth(admin_key)).get_json()["items"][0]
    assert (run["status"], run["attempts"]) == ("failed", 2)
    assert run["last_error"].startswith("gave up after 2 attempts; last error: FormFailed") and "ValueError" in run["last_error"]
    assert client.get(f"/api/v1/forms/second/tasks/{live['id']}/runs",
                      headers=auth(admin_key)).get_json()["items"][0]["status"] == "done"


def test_a_webhook_task_gets_its_forms_flag_events_only_while_enabled(client, admin_key, make_form, conn):
    from fieldpipe.webhooks.delivery import enqueue

    form = make_form()
    other = make_form(slug="other")
    task = add_task(client, admin_key, "webhook", {"url": "http://127.0.0.1:9/x", "events": ["flag.opened"]})
    org = conn.execute("SELECT organization_id FROM forms WHERE slug = 'household-survey'").fetchone()["organization_id"]
    ids = {f["slug"]: conn.execute("SELECT id FROM forms WHERE slug = %s", (f["slug"],)).fetchone()["id"]
           for f in (form, other)}

    def flag(form_id, key):
        return {"organization_id": org, "form_id": form_id, "event": "flag.opened", "event_key": key, "data": {}}

    assert enqueue(conn, [flag(ids["household-survey"], "a"), flag(ids["other"], "b")]) == 1
    client.patch(f"{TASKS}/{task['id']}", json={"enabled": False}, headers=auth(admin_key))
    assert enqueue(conn, [flag(ids["household-survey"], "c")]) == 0
    keys = [r["event_key"] for r in conn.execute("SELECT event_key FROM webhook_deliveries")]
    assert keys == ["a"]


def test_the_demo_forms_receipts_sheets_and_rules_are_tasks(conn, tmp_path, monkeypatch):
    from fieldpipe.dev.demo import load_demo

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    load_demo(conn)
    load_demo(conn)  # twice: nothing doubles
    tasks = conn.execute("""SELECT f.slug, t.kind, t.enabled FROM form_tasks t JOIN forms f ON f.id = t.form_id
                             WHERE f.slug IN ('household-survey', 'school-visit') ORDER BY f.slug, t.kind""").fetchall()
    assert [tuple(t.values()) for t in tasks] == [
        ("household-survey", "rules", True), ("household-survey", "sheet_export", True),
        ("household-survey", "sms_receipt", True), ("school-visit", "sheet_export", True),
        ("school-visit", "sms_receipt", True)]
    receipts = conn.execute("SELECT count(*) AS n FROM sms_messages WHERE kind = 'receipt'").fetchone()["n"]
    assert receipts >= 4  # yesterday's household responses, each with a phone answer
    assert run_kind(conn, "sheet_export")["done"] >= 4
    assert (tmp_path / "exports" / "household-survey.xlsx").exists()

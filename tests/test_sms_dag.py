"""The `send_sms` DAG end to end (dag.test): it sends what is due through the file provider, in the `sms` pool."""

from __future__ import annotations

import json

import pytest

from fieldpipe.orgs import ensure_organization
from fieldpipe.sms.outbox import NewMessage, enqueue


@pytest.mark.airflow
def test_the_dag_sends_due_messages_once(conn, run_dag, monkeypatch, tmp_path):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FIELDPIPE_SMS_PROVIDER", "file")
    org = ensure_organization(conn, "acme")
    enqueue(conn, [NewMessage(f"receipt:{i}", "receipt", org, f"+91987654321{i}", f"Thank you, respondent {i}")
                   for i in range(3)])

    run = run_dag("send_sms")

    [ti] = run.get_task_instances()
    assert ti.pool == "sms"
    lines = [json.loads(line) for line in (tmp_path / "sms" / "sent.jsonl").read_text().splitlines()]
    assert sorted(line["body"] for line in lines) == [f"Thank you, respondent {i}" for i in range(3)]
    assert {r["status"] for r in conn.execute("SELECT status FROM sms_messages")} == {"sent"}


def test_operator_drains_the_outbox_and_reports_counts(conn, db_url, monkeypatch, tmp_path):
    from operators.sms import SmsDispatchOperator

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FIELDPIPE_SMS_PROVIDER", "file")
    monkeypatch.setenv("AIRFLOW_CONN_APP_DB", db_url)
    org = ensure_organization(conn, "acme")
    enqueue(conn, [NewMessage(f"receipt:{i}", "receipt", org, f"+91987654321{i}", f"Receipt {i}") for i in range(2)])

    counts = SmsDispatchOperator(task_id="send", max_seconds=5, conn_id="app_db").execute(context={})

    assert counts["sent"] == 2 and counts["failed"] == 0
    assert len((tmp_path / "sms" / "sent.jsonl").read_text().splitlines()) == 2

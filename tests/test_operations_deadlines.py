"""Issue 22: a DAG run that misses its deadline (Airflow 3's replacement for SLA misses) reaches the operators,
through Airflow's real scheduler, api-server, dag-processor and LocalExecutor; Airflow's own metrics reach a
StatsD listener on the way. Also: the deadline callback's notices for each DAG, tested without Airflow."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from fieldpipe.dev.airflow_runtime import local_smtp_connection
from fieldpipe.dev.airflow_stack import AirflowStack
from fieldpipe.dev.mail_sink import MailSink
from fieldpipe.orgs import ensure_organization
from fieldpipe.pipelines import notify
from fieldpipe.sms.outbox import NewMessage, enqueue
from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.conftest import _create_database
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import auth

# A `send_sms` that is late on purpose: its one task outlasts the run's deadline (seconds, not minutes).
LATE_SEND_SMS = '''
"""Probe: send_sms, late on purpose. Reads and writes nothing; sleeps past its deadline. Triggered by the test."""
import time
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert


@dag(schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False, tags=["probe"],
     default_args=DEFAULT_ARGS, deadline=deadline_alert(timedelta(seconds=3)))
def send_sms():
    @task
    def dispatch_due_messages():
        time.sleep(15)

    dispatch_due_messages()


send_sms()
'''


class StatsdListener:
    """A StatsD server in miniature: a UDP socket on loopback keeping every metric line it receives."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def _receive(self):
        while not self._stop.is_set():
            try:
                packet = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.lines += packet.decode(errors="replace").splitlines()

    def names(self) -> set[str]:
        return {line.split(":", 1)[0] for line in list(self.lines)}

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sock.close()


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(1)
    return result


@pytest.fixture
def acme_listens(conn, client, admin_key, monkeypatch):
    """acme mails ops@acme.example and has a webhook for pipeline notices; it has one SMS waiting."""
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    with WebhookReceiver() as receiver:
        client.put("/api/v1/notices/recipients", json={"emails": ["ops@acme.example"]}, headers=auth(admin_key))
        secret = client.post("/api/v1/webhooks", json={"url": receiver.url("/ops"), "events": ["pipeline.failed"]},
                             headers=auth(admin_key)).get_json()["secret"]
        acme = ensure_organization(conn, "acme")
        enqueue(conn, [NewMessage("announcement:1", "announcement", acme, "+919876500001", "Hello")])
        conn.commit()
        yield receiver, secret


@pytest.mark.airflow
@pytest.mark.timeout(900)
def test_a_run_past_its_deadline_gives_one_notice_by_mail_and_webhook_and_airflow_sends_statsd_metrics(
        pg_server, db_url, conn, tmp_path, acme_listens, monkeypatch):
    receiver, secret = acme_listens
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "send_sms.py").write_text(LATE_SEND_SMS)
    metadata_url = _create_database(pg_server[0], "airflow_deadlines")
    with MailSink(tmp_path / "mail") as mail, StatsdListener() as statsd:
        extra = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW_CONN_SMTP_DEFAULT": local_smtp_connection(mail.port),
                 "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port), "FIELDPIPE_OPERATOR_EMAILS": "platform@example.org",
                 ALLOW_NETS_ENV: "127.0.0.0/8"}
        with AirflowStack(db_url, metadata_url, tmp_path / "airflow", ["send_sms"], extra_env=extra) as stack:
            run = stack.run_once("send_sms")
            # the scheduler finds the missed deadline and the executor runs the callback, soon after the miss
            wait_for(lambda: len(mail.messages()) >= 2, 180, "the deadline notices' mail")
            time.sleep(5)  # were a notice sent per check or per retry, more mail would arrive meanwhile
            names = statsd.names()
        deliver_due(conn, DeliveryPolicy(timeout=5.0))
        deliver_due(conn, DeliveryPolicy(timeout=5.0))
        messages = {m["To"]: m for m in mail.messages()}

    assert run["state"] == "success"  # late is not failed: the run goes on
    assert sorted(messages) == ["ops@acme.example", "platform@example.org"]
    assert messages["platform@example.org"]["Subject"] == "[fieldpipe] send_sms missed its deadline"
    assert messages["ops@acme.example"]["Subject"] == "[fieldpipe] send_sms is late for acme"
    text = messages["ops@acme.example"].get_body(("plain", "html")).get_content()
    assert f"DAG send_sms, run {run['run_id']}: not finished by its deadline" in text
    assert "acme: 1 waiting" in text and "(sms backlog)" in text
    assert f"/dags/send_sms/runs/{run['run_id'].replace(':', '%3A').replace('+', '%2B')}" in text
    [posted] = receiver.requests
    assert posted.headers["Fieldpipe-Event"] == "pipeline.failed"
    assert verify_signature(secret, posted.headers[SIGNATURE_HEADER], posted.body)
    data = posted.json()["data"]
    assert (data["dag_id"], data["run_id"], data["backlog"], data["items"]) == ("send_sms", run["run_id"], "sms", 1)
    # Airflow's own metrics, from the scheduler itself, including the miss it handled
    assert "airflow.scheduler_heartbeat" in names
    assert "airflow.deadline_alerts.deadline_missed" in names
    assert "airflow.ti.finish.send_sms.dispatch_due_messages.success" in names  # from the task's own process


def test_a_late_dag_of_no_backlog_concerns_the_platform_only_and_is_announced_once(conn, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    acme = ensure_organization(conn, "acme")
    enqueue(conn, [NewMessage("announcement:1", "announcement", acme, "+919876500001", "Hello")])
    late = notify.late_notices(conn, dag_id="archive_responses", run_id="r1", deadline="t", state="running",
                               run_url="http://x/dags/archive_responses/runs/r1")
    assert [(n.organization_id, n.incident) for n in late] == [(None, "late:archive_responses")]
    # send_sms holds acme's SMS up; another organization with nothing waiting hears nothing
    ensure_organization(conn, "rival")
    late = notify.late_notices(conn, dag_id="send_sms", run_id="r1", deadline="t", state="running",
                               run_url="http://x")
    assert [(n.organization_id, n.incident) for n in late] == [(None, "late:send_sms"), (acme, "late:send_sms")]


def deadline_context(dag_id="send_sms", run_id="scheduled__2026-11-30T04:00:00+00:00"):
    """What the scheduler hands a deadline callback (Deadline.handle_miss), as far as the notifier reads it."""
    return {"dag_run": {"dag_id": dag_id, "dag_run_id": run_id, "state": "running"},
            "deadline": {"id": "x", "deadline_time": "2026-11-30T04:05:00+00:00"}}


def succeeded(dag, started):
    """What the Task SDK hands an on_success_callback (the DAG as parsed, the run as the Execution API gives it)."""
    from types import SimpleNamespace

    from airflow.sdk.api.datamodels._generated import DagRun

    run = DagRun(dag_id=dag.dag_id, run_id="r", logical_date=None, data_interval_start=None, data_interval_end=None,
                 run_after=started, start_date=started, end_date=None, run_type="scheduled", state="running",
                 consumed_asset_events=[], partition_key=None)
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id="dispatch_due_messages", map_index=-1)
    return {"ti": ti, "dag": dag, "dag_run": run}


def test_a_dag_late_run_after_run_is_announced_once_until_a_task_succeeds_in_time(conn, monkeypatch, tmp_path):
    import datetime as dt

    from airflow.sdk import DAG

    from fieldpipe.pipelines.defaults import deadline_alert

    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    dag = DAG("send_sms", schedule=None, deadline=deadline_alert(dt.timedelta(minutes=5)))
    now = dt.datetime.now(dt.timezone.utc)
    with MailSink(tmp_path) as mail:
        monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(mail.port))
        notify.on_deadline_missed(deadline_context())
        notify.on_deadline_missed(deadline_context(run_id="scheduled__2026-11-30T04:01:00+00:00"))
        assert len(mail.messages()) == 1

        # a task that succeeds after its run's deadline does not end the incident
        notify.on_task_succeeded(succeeded(dag, now - dt.timedelta(minutes=6)))
        notify.on_deadline_missed(deadline_context(run_id="r3"))
        assert len(mail.messages()) == 1
        # another DAG's punctual task does not either
        notify.on_task_succeeded(succeeded(DAG("export_sheets", schedule=None,
                                               deadline=deadline_alert(dt.timedelta(minutes=30))), now))
        notify.on_deadline_missed(deadline_context(run_id="r4"))
        assert len(mail.messages()) == 1
        # one within it does: the next late run is announced
        notify.on_task_succeeded(succeeded(dag, now - dt.timedelta(minutes=4)))
        notify.on_deadline_missed(deadline_context(run_id="r5"))
        assert len(mail.messages()) == 2


def test_a_deadline_notice_that_cannot_be_mailed_is_recorded_and_never_raises(conn, monkeypatch):
    from fieldpipe.dev.embedded_db import free_port

    monkeypatch.setenv("FIELDPIPE_OPERATOR_EMAILS", "platform@example.org")
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", local_smtp_connection(free_port()))
    notify.on_deadline_missed(deadline_context())
    row = conn.execute("SELECT incident, email_status, email_attempts FROM operator_notices").fetchone()
    assert row == {"incident": "late:send_sms", "email_status": "pending", "email_attempts": 1}

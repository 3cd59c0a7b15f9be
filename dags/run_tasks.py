"""Run the forms' async post-submission tasks (receipts, sheet exports, webhooks, plugins' kinds) set-based.

- **Reads** (connection `fieldpipe_db`): due runs in the ledger `task_runs` (queued when a response or an
  edit is stored, or by a replay), the forms' `form_tasks`, pending `task_replays`, the runs' responses.
- **Writes**: each run's outcome in `task_runs` (done, skipped, failed with the error, or queued again
  after the shared backoff), in the same transaction as the kind's effect: SMS intents in `sms_messages`
  (which wakes `send_sms` through the `fieldpipe.sms_outbox` asset), rows in `webhook_deliveries` (POSTed,
  signed, by `deliver_webhooks` below), the sheet (through `google_sheets`, or the local workbook).
- **How**: `start_replays` queues the runs of pending replays (one statement each); `kinds_due` lists the
  kinds with due runs; one mapped `run_kind` task per kind (never per form or response) claims that kind's
  runs of every form in batches and hands each batch to the kind. A batch that raises is rerun one run at a
  time, so a run that poisons its kind fails alone, recorded and retried, and the other runs proceed.
- **Schedule**: within seconds of new or edited responses (the `fieldpipe.responses` asset, which the
  database's notifications wake; fieldpipe/pipelines/events.py), and every minute as a safety net (which is
  also when replays and retries that came due start); one run at a time. Receipts do not wait for it: they
  are queued at ingestion.
- **Rerun / backfill**: a run does what is due now, and a (task, response revision) is run once (the
  ledger's unique key), so rerunning adds nothing. To send history through a task, replay it:
  `POST /api/v1/forms/{slug}/tasks/{id}/replay {"from", "to"}`. Failed runs: `GET .../tasks/{id}/runs?status=failed`.
- **Deadline**: a run not finished 10 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from fieldpipe.pipelines.assets import RESPONSES, SMS_OUTBOX
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert

RUN_SECONDS = 240  # per kind and run; what is left waits for the next run


@dag(
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="UTC"),
                                 assets=[RESPONSES]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=15),
    deadline=deadline_alert(timedelta(minutes=10)),
    tags=["tasks", "sms", "webhooks", "sheets"],
    default_args=DEFAULT_ARGS,
)
def run_tasks():
    @task
    def start_replays() -> list[dict]:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.tasks.replay import start_pending

        with app_database() as conn:
            conn.autocommit = True
            started = start_pending(conn)
        print(f"{len(started)} replay(s) started: {started}")
        return started

    @task
    def kinds_due() -> list[str]:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.tasks.ledger import due_kinds

        with app_database() as conn:
            kinds = due_kinds(conn)
        print(f"kinds with due runs: {kinds}")
        return kinds

    @task(outlets=[SMS_OUTBOX], map_index_template="{{ task_kind }}", execution_timeout=timedelta(minutes=8))
    def run_kind(kind: str) -> dict:
        from airflow.sdk import get_current_context

        from fieldpipe.pipelines.connections import app_database, google_sheets
        from fieldpipe.tasks.runner import run_kind as run

        get_current_context()["task_kind"] = kind  # names the mapped task instance in the UI
        with app_database() as conn:
            return run(conn, kind, {"sheets": google_sheets()}, max_seconds=RUN_SECONDS)

    # Webhook tasks' deliveries go out now rather than at flag_callbacks' next run.
    @task(execution_timeout=timedelta(minutes=6), trigger_rule="all_done")
    def deliver_webhooks() -> dict:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.webhooks.delivery import deliver_due

        with app_database() as conn:
            return deliver_due(conn, max_seconds=RUN_SECONDS)

    kinds = kinds_due()
    start_replays() >> kinds
    run_kind.expand(kind=kinds) >> deliver_webhooks()


run_tasks()

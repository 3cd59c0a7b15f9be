"""Flag callbacks: tell collectors what to fix (SMS and signed webhooks) and deliver due webhook calls.

- **Reads** (connection `fieldpipe_db`): `flags` written by `validate_responses`, `flag_notifications`,
  `responses` / `response_revisions` / `forms`, the organizations' `webhooks` and due `webhook_deliveries`.
- **Writes**: `announce_flags` records each announced response revision in `flag_notifications` and, in
  the same transaction, one SMS intent per flagged revision in `sms_messages` (sent by `send_sms`, which
  the `fieldpipe.sms_outbox` asset wakes) and one row per wanted webhook in `webhook_deliveries`
  (`flag.opened`, and `flag.resolved` once an edit passes). `deliver_webhooks` POSTs due deliveries
  (10 s total timeout, 64 KiB answer cap, signed), records every attempt in `webhook_attempts`, schedules
  retries (backoff with jitter, up to 24 h) and keeps each endpoint's circuit breaker.
- **Schedule**: whenever `validate_responses` updates the flags asset, and every 2 minutes as a safety
  net, which is also when webhook retries that came due are sent. One run at a time.
- **Rerun / backfill**: each run does what is due now; rerunning or retrying a task adds nothing (ledger
  rows and dedupe keys), so there is nothing to backfill. Failed deliveries are listed by
  `GET /api/v1/deliveries?status=failed` and replayed with `POST /api/v1/deliveries/{id}/retry` or
  `fieldpipe deliveries retry --all-failed`. See docs/webhooks.md.
- **Deadline**: a run not finished 10 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from fieldpipe.pipelines.assets import FLAGS, SMS_OUTBOX
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert


@dag(
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("*/2 * * * *", timezone="UTC"),
                                 assets=[FLAGS]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=15),
    deadline=deadline_alert(timedelta(minutes=10)),
    tags=["flags", "sms", "webhooks"],
    default_args=DEFAULT_ARGS,
)
def flag_callbacks():
    @task(outlets=[SMS_OUTBOX])
    def announce_flags() -> dict:
        from fieldpipe.flag_notices import enqueue_flag_notices
        from fieldpipe.pipelines.connections import app_database

        with app_database() as conn:
            return enqueue_flag_notices(conn)

    # Due deliveries (retries, earlier runs' leftovers) go out even when announcing failed this time.
    @task(execution_timeout=timedelta(minutes=10), trigger_rule="all_done")
    def deliver_webhooks() -> dict:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.webhooks.delivery import deliver_due

        with app_database() as conn:
            return deliver_due(conn, max_seconds=300)

    announce_flags() >> deliver_webhooks()


flag_callbacks()

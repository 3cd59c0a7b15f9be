"""Operations: raise backlog notices, send the daily failure digest, and retry notices' mail that did not go out.

- **Reads** (connection `fieldpipe_db`): the age of each organization's oldest pending SMS
  (`sms_messages`), webhook delivery (`webhook_deliveries`), response to validate (after
  `validation_watermarks`) and response to export (after `sheet_exports.watermark`), in one set-based
  statement; yesterday's failed SMS, deliveries and `pipeline_failures`; notices whose mail is due.
- **Writes**: `operator_notices` (one per organization and incident: `backlog.exceeded` while a backlog is
  older than its threshold, resolved when it drains; `failures.digest` once a day; failed forms' notices
  resolved once the form is no longer in `pipeline_failures`), their webhook
  deliveries (events `backlog.exceeded`, `failures.digest`; delivered by `flag_callbacks`) and mail through
  the connection `smtp_default`, retried with backoff.
- **Thresholds**: `FIELDPIPE_BACKLOG_MAX_AGE_SMS`, `_WEBHOOK`, `_UNEXPORTED`, `_UNVALIDATED` (minutes;
  defaults 30, 60, 60, 30). A value that is not a whole number of minutes from 1 to 10080 fails this file's
  parse, naming the variable, so a typo never silently turns the alarm off.
- **Schedule**: every 5 minutes, one run at a time. A run is late after 10 minutes (a deadline alert).
- **Rerun / backfill**: every task is idempotent (one open notice per incident, one digest per day); a
  rerun checks the backlogs as they are now. Nothing to backfill.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fieldpipe.config import OperationsSettings
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert

OperationsSettings.from_env()  # refuses a misconfigured threshold here, at parse, with its variable's name


@dag(
    doc_md=__doc__,
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=15),
    deadline=deadline_alert(timedelta(minutes=10)),
    tags=["operations", "notices"],
    default_args=DEFAULT_ARGS,
)
def operations():
    @task
    def check_backlogs() -> dict:
        from fieldpipe.operations.backlog import check
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.pipelines.notify import resolve_recovered_forms

        with app_database() as conn:
            conn.autocommit = True
            counts = check(conn)
            recovered = resolve_recovered_forms(conn)
        print(f"backlogs: {counts['checked']} non-empty, {counts['over']} past their threshold, "
              f"{counts['opened']} notice(s) opened, {counts['resolved']} resolved; "
              f"{recovered} failed form(s) recovered")
        return counts

    @task
    def daily_digest(data_interval_end=None) -> dict:
        from fieldpipe.operations.digest import send_digests
        from fieldpipe.pipelines.connections import app_database

        day = (data_interval_end or pendulum.now("UTC")).date() - timedelta(days=1)
        with app_database() as conn:
            conn.autocommit = True
            counts = send_digests(conn, day)
        print(f"digest of {day}: {counts['organizations']} organization(s) with failures, "
              f"{counts['opened']} digest(s) opened")
        return counts

    @task
    def send_notice_mail() -> dict:
        from fieldpipe.operations.notices import send_due_emails, smtp_mailer
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.pipelines.names import SMTP_CONN

        with app_database() as conn:
            conn.autocommit = True
            counts = send_due_emails(conn, smtp_mailer(SMTP_CONN))
        print(f"notice mail: {counts['sent']} sent, {counts['retry']} to retry, {counts['failed']} given up")
        return counts

    [check_backlogs(), daily_digest()] >> send_notice_mail()


operations()

"""Announcements to parents: resolve each due announcement's audience and enqueue its SMS.

- **Reads** (connection `fieldpipe_db`): `announcements` that are `scheduled` and due (`send_at` passed; an
  announcement above the approval threshold is `awaiting_approval` until a second admin approves it),
  `students`, `guardians`, `classes`, `schools`, the organization's `sms_policies`, and for results
  `student_marks` / `exam_answers` of the announcement's assessment.
- **Writes**: per announcement, in one transaction, its `announcement_recipients` (one INSERT ... SELECT:
  a row per guardian phone, per phone and child for results, skipped ones with their reason) and its
  `sms_messages` (one INSERT ... SELECT ... ON CONFLICT (dedupe_key) DO NOTHING per batch of 20,000),
  then publishes the `fieldpipe.sms_outbox` asset so `send_sms` sends at once, at the provider's rate,
  holding messages in quiet hours and above the daily cap (fieldpipe/sms/outbox.py `claim_due`).
- **Counts per run**: the task's return value (XCom `return_value`: announcements, resolved, skipped,
  enqueued, and each announcement's counts) and its log lines.
- **Schedule**: every minute, one run at a time. **Rerun / backfill**: a run fans out what is due now;
  a rerun adds nothing (recipients and messages are keyed), so there is nothing to backfill.
- **Deadline**: a run not finished 10 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from fieldpipe.pipelines.assets import SMS_OUTBOX
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert


@dag(
    doc_md=__doc__,
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    deadline=deadline_alert(timedelta(minutes=10)),
    tags=["sms", "announcements"],
    default_args=DEFAULT_ARGS,
)
def announcements():
    @task(outlets=[SMS_OUTBOX], execution_timeout=timedelta(minutes=20))
    def fan_out_due_announcements() -> dict:
        from fieldpipe.announcements.fanout import fan_out_due
        from fieldpipe.pipelines.connections import app_database

        with app_database() as conn:
            return fan_out_due(conn)

    fan_out_due_announcements()


announcements()

"""Send SMS: claim due messages from the outbox and send them through the configured provider.

- **Reads** (connection `fieldpipe_db`): `sms_messages` that are `queued` and due, and claims left
  `sending` by a killed dispatcher (past its `lease_until`: claims are leased for `FIELDPIPE_SMS_LEASE_S`, 10 minutes).
- **Writes**: each message's outcome (`sent`, `failed`, `unknown`, or `queued` again for a retry with
  backoff) and one `sms_attempts` row per attempt. Messages go out through `FIELDPIPE_SMS_PROVIDER`:
  `file` (var/sms/sent.jsonl, the local default), `sns` (connection `aws_default`) or `twilio`
  (connection `twilio_default`), never faster than `FIELDPIPE_SMS_RATE_<PROVIDER>` messages a second.
- **Schedule**: within seconds of messages being queued (the `fieldpipe.sms_outbox` asset, updated by the
  database's events through the triggerer and by `flag_callbacks`), and every minute as a safety net.
  One run at a time, in the `sms` pool; a run sends for at most 50 s, then the next run continues.
- **Rerun / backfill**: a run sends what is due now, whatever its interval, so a rerun, a retried task
  or a backfill sends only what has not been sent: claims are `FOR UPDATE SKIP LOCKED`, outcomes are
  recorded per chunk, and a claim abandoned by a killed task is settled after the lease without blind
  resending (docs/sms.md). Messages whose outcome is `unknown` wait for an operator:
  `fieldpipe sms retry <id>` or `POST /api/v1/messages/{id}/retry`.
- **Deadline**: a run not finished 5 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag
from operators.sms import SmsDispatchOperator

from fieldpipe.pipelines.assets import SMS_OUTBOX
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert
from fieldpipe.pipelines.names import SMS_POOL

SEND_SECONDS = 50  # per run, so a run ends before the next minute's starts


@dag(
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("* * * * *", timezone="UTC"),
                                 assets=[SMS_OUTBOX]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    deadline=deadline_alert(timedelta(minutes=5)),
    tags=["sms"],
    default_args=DEFAULT_ARGS,
)
def send_sms():
    # The execution timeout stays below the lease, so a live dispatcher's claims are never settled as abandoned.
    SmsDispatchOperator(task_id="dispatch_due_messages", max_seconds=SEND_SECONDS, pool=SMS_POOL,
                        execution_timeout=timedelta(minutes=5))


send_sms()

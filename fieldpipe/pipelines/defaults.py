"""`default_args` shared by every DAG: owner, retries with exponential backoff, no retry of a
configuration error (a missing Airflow connection cannot fix itself, so the task fails at once), and the
operators' notices: a task that fails after its retries raises one notice per incident (signed webhook and
mail, fieldpipe.pipelines.notify); its next success resolves it. `deadline_alert` is Airflow 3's SLA.

DAG files import this at parse time, so it imports nothing but the Task SDK.
"""

from datetime import timedelta

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule
from airflow.sdk.definitions.callback import SyncCallback
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from fieldpipe.pipelines.notify import on_task_failed, on_task_succeeded

DEFAULT_ARGS = {
    "owner": "fieldpipe",
    "retries": 3,
    "retry_delay": timedelta(minutes=1),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=30),
    "retry_policy": ExceptionRetryPolicy(rules=[
        RetryRule(exception="airflow.sdk.exceptions.AirflowNotFoundException", action=RetryAction.FAIL,
                  reason="a missing Airflow connection or variable is a configuration error"),
        RetryRule(exception="fieldpipe.pipelines.failures.FormFailed", action=RetryAction.FAIL,
                  reason="one form's data or settings need a person; recorded in pipeline_failures, "
                         "the next run tries it again"),
    ]),
    # Callbacks run in the task's process after its last try (failure) or its success; they never raise.
    "on_failure_callback": on_task_failed,
    "on_success_callback": on_task_succeeded,
}


def deadline_alert(within: timedelta) -> DeadlineAlert:
    """A run not finished `within` of being queued notifies the platform's operators (Airflow 3 replaced SLA
    misses with deadline alerts; the scheduler checks them and runs the callback through the executor)."""
    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=within,
                         callback=SyncCallback("fieldpipe.pipelines.notify.on_deadline_missed"))

"""`default_args` shared by every DAG: owner, retries with exponential backoff, and no retry of a
configuration error (a missing Airflow connection cannot fix itself, so the task fails at once).

DAG files import this at parse time, so it imports nothing but the Task SDK.
"""

from datetime import timedelta

from airflow.sdk import ExceptionRetryPolicy, RetryAction, RetryRule

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
}


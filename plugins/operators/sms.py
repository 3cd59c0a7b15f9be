"""`SmsDispatchOperator`: one task that drains the SMS outbox for a bounded time."""

from __future__ import annotations

from functools import partial
from typing import Any

from airflow.sdk import BaseOperator

from fieldpipe.pipelines.names import APP_DB_CONN


class SmsDispatchOperator(BaseOperator):
    """Send the due messages of the outbox through the configured provider for at most `max_seconds`.

    Returns the run's counts (sent, retry, failed, unknown, requests, rate), which land in XCom and the log.
    The provider, its rate and its retry policy come from the environment (`FIELDPIPE_SMS_*`, docs/sms.md);
    the database from the Airflow connection `conn_id`.
    """

    ui_color = "#e8f4ea"

    def __init__(self, *, max_seconds: float, conn_id: str = APP_DB_CONN, **kwargs: Any):
        super().__init__(**kwargs)
        self.max_seconds = max_seconds
        self.conn_id = conn_id

    def execute(self, context: Any) -> dict:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.sms.dispatch import dispatch_configured

        report = dispatch_configured(partial(app_database, self.conn_id), max_seconds=self.max_seconds)
        return report.as_dict()

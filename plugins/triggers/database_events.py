"""`DatabaseEventTrigger`: the database's notifications of new work, as asset events (fieldpipe.pipelines.events)."""

from __future__ import annotations

from typing import Any, AsyncIterator

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from fieldpipe.pipelines.events import MIN_INTERVAL_S
from fieldpipe.pipelines.names import APP_DB_CONN, EVENTS_CHANNEL

CLASSPATH = "triggers.database_events.DatabaseEventTrigger"


class DatabaseEventTrigger(BaseEventTrigger):
    """Yield an event when transactions that wrote work of `topic` commit (coalesced), and after each (re)connection.

    Runs in the triggerer for as long as an asset watches it; reaches the database through the Airflow
    connection `conn_id` and reconnects by itself when the database restarts.
    """

    def __init__(self, *, topic: str, conn_id: str = APP_DB_CONN, channel: str = EVENTS_CHANNEL,
                 min_interval: float = MIN_INTERVAL_S, **kwargs: Any):
        super().__init__(**kwargs)
        self.topic = topic
        self.conn_id = conn_id
        self.channel = channel
        self.min_interval = min_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"topic": self.topic, "conn_id": self.conn_id, "channel": self.channel,
                           "min_interval": self.min_interval}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from fieldpipe.pipelines.connections import app_database_async
        from fieldpipe.pipelines.events import coalesced_events

        async for payload in coalesced_events(lambda: app_database_async(self.conn_id), self.topic,
                                              channel=self.channel, min_interval=self.min_interval):
            yield TriggerEvent(payload)

"""The assets DAGs schedule on and publish, each declared once (URIs in `names`).

`RESPONSES` and `SMS_OUTBOX` are also watched: the triggerer turns the database's notifications of new work
into events of these assets (fieldpipe.pipelines.events), so their DAGs run within seconds of a commit.
A DAG that should react to new responses or queued messages schedules on them as well.
"""

from airflow.sdk import Asset, AssetWatcher
from triggers.database_events import DatabaseEventTrigger

from fieldpipe.pipelines import names


def database_events(topic: str) -> list[AssetWatcher]:
    return [AssetWatcher(name=f"{names.EVENTS_CHANNEL}.{topic}", trigger=DatabaseEventTrigger(topic=topic))]


RESPONSES = Asset(names.RESPONSES_ASSET, watchers=database_events(names.RESPONSES_TOPIC))
FLAGS = Asset(names.FLAGS_ASSET)
SMS_OUTBOX = Asset(names.SMS_OUTBOX_ASSET, watchers=database_events(names.SMS_OUTBOX_TOPIC))
ASSESSMENT_SUMMARIES = Asset(names.ASSESSMENT_SUMMARIES_ASSET)

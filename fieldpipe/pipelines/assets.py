"""The assets DAGs schedule on and publish, each declared once (URIs in `names`)."""

from airflow.sdk import Asset

from fieldpipe.pipelines import names

FLAGS = Asset(names.FLAGS_ASSET)
SMS_OUTBOX = Asset(names.SMS_OUTBOX_ASSET)
ASSESSMENT_SUMMARIES = Asset(names.ASSESSMENT_SUMMARIES_ASSET)

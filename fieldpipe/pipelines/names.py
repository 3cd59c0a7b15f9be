"""Asset URIs, pools and Airflow connection ids: every name the pipelines share, declared once.

Imports nothing, so the domain, the operators, the DAGs and the Airflow runtime can all use it.
"""

# Assets: a producer task lists one in its outlets, or the database announces it (below); the consuming DAG
# schedules on it.
RESPONSES_ASSET = "fieldpipe.responses"  # responses were stored or edited, or rules changed; validate_responses runs
FLAGS_ASSET = "fieldpipe.flags"  # validate_responses wrote flags; flag_callbacks announces them
SMS_OUTBOX_ASSET = "fieldpipe.sms_outbox"  # messages were queued; send_sms runs at once
ASSESSMENT_SUMMARIES_ASSET = "fieldpipe.assessment_summaries"  # aggregate_assessments wrote summaries

# Events from the database (fieldpipe.pipelines.events): triggers in the database NOTIFY this channel with a
# topic as the payload when a transaction writes new work; the triggerer turns them into asset events.
EVENTS_CHANNEL = "fieldpipe_events"
RESPONSES_TOPIC = "responses"  # response revisions (new responses, edits, repairs) or a rules version written
SMS_OUTBOX_TOPIC = "sms_outbox"  # messages queued, or one put back in the queue by an operator
EVENT_TOPICS = (RESPONSES_TOPIC, SMS_OUTBOX_TOPIC)

# Pools. A task that names a pool which does not exist waits forever without an error, so every pool
# here is created by the Airflow runtime's init (and docker-compose's init service through it).
SHEETS_POOL = "sheets_api"
SMS_POOL = "sms"
POOLS: dict[str, tuple[int, str]] = {
    SHEETS_POOL: (2, "Google Sheets exports: Google allows 300 requests a minute per project"),
    SMS_POOL: (2, "SMS dispatch: provider rate limits are enforced inside each task"),
}

# Airflow connections (docs/airflow.md lists their local and production values).
APP_DB_CONN = "fieldpipe_db"
AWS_CONN = "aws_default"
GOOGLE_SHEETS_CONN = "google_sheets"
TWILIO_CONN = "twilio_default"
SMTP_CONN = "smtp_default"  # operators' notices by mail (fieldpipe.operations.notices)
CONNECTION_IDS = (APP_DB_CONN, AWS_CONN, GOOGLE_SHEETS_CONN, TWILIO_CONN, SMTP_CONN)

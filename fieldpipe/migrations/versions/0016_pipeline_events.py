"""Events for the pipelines: a transaction that writes new work NOTIFYs the channel `fieldpipe_events`.

The payload is a topic: `responses` when response revisions (new responses, edits, repairs: every path
writes one) or a rules version are written; `sms_outbox` when messages enter the outbox or an operator puts
a failed or unknown one back in the queue. PostgreSQL delivers a notification only when its transaction
commits and sends identical ones of a transaction once, so a batch of a thousand responses is one
notification and a rolled-back request none. Statements that insert nothing (duplicates under
ON CONFLICT DO NOTHING) notify nothing. The triggerer listens (fieldpipe.pipelines.events).

Revision ID: 0016_pipeline_events
Revises: 0015_outbox_lease
"""

from alembic import op

revision = "0016_pipeline_events"
down_revision = "0015_outbox_lease"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Statement level, over the statement's inserted rows: one call per statement, not per row.
        CREATE FUNCTION fieldpipe_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM inserted) THEN
                PERFORM pg_notify('fieldpipe_events', TG_ARGV[0]);
            END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION fieldpipe_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('fieldpipe_events', TG_ARGV[0]);
            RETURN NULL;
        END $$;

        CREATE TRIGGER response_revisions_notify AFTER INSERT ON response_revisions
            REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
            EXECUTE FUNCTION fieldpipe_notify_inserted('responses');
        CREATE TRIGGER rules_versions_notify AFTER INSERT ON rules_versions
            REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
            EXECUTE FUNCTION fieldpipe_notify_inserted('responses');
        CREATE TRIGGER sms_messages_notify AFTER INSERT ON sms_messages
            REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
            EXECUTE FUNCTION fieldpipe_notify_inserted('sms_outbox');
        -- An operator's retry; the dispatcher's own requeues (a retry with backoff) wake nobody.
        CREATE TRIGGER sms_messages_requeued_notify AFTER UPDATE OF status ON sms_messages
            FOR EACH ROW WHEN (OLD.status IN ('failed', 'unknown') AND NEW.status = 'queued')
            EXECUTE FUNCTION fieldpipe_notify('sms_outbox');
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TRIGGER sms_messages_requeued_notify ON sms_messages;
        DROP TRIGGER sms_messages_notify ON sms_messages;
        DROP TRIGGER rules_versions_notify ON rules_versions;
        DROP TRIGGER response_revisions_notify ON response_revisions;
        DROP FUNCTION fieldpipe_notify();
        DROP FUNCTION fieldpipe_notify_inserted();
        """
    )

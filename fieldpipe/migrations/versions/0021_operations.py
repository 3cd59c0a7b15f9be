"""Operations: notices to an organization's operators (pipeline failures, backlogs, the daily digest), whom
they are mailed to, and the webhook events that carry them.

Revision ID: 0021_operations
Revises: 0020_scale_indexes
"""

from alembic import op

revision = "0021_operations"
down_revision = "0020_scale_indexes"
branch_labels = None
depends_on = None

# the events before this revision (flags, and form tasks' response events: 0017_form_tasks), then with notices
PREVIOUS_EVENTS = "ARRAY['flag.opened', 'flag.resolved', 'response.created', 'response.updated']"
ALL_EVENTS = ("ARRAY['flag.opened', 'flag.resolved', 'response.created', 'response.updated', "
              "'pipeline.failed', 'backlog.exceeded', 'failures.digest']")


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE organizations ADD COLUMN notice_emails text[] NOT NULL DEFAULT '{{}}';

        -- One row per notice. An incident (a task failing, a backlog past its age) has one open notice per
        -- organization (NULL: the platform's operators) until it is resolved, so a failure that repeats run
        -- after run is announced once. Its webhook is a delivery in the webhooks outbox; its mail is sent
        -- and retried from here.
        CREATE TABLE operator_notices (
            id                    bigserial PRIMARY KEY,
            organization_id       bigint REFERENCES organizations(id) ON DELETE CASCADE,
            incident              text NOT NULL,
            kind                  text NOT NULL
                                  CHECK (kind IN ('pipeline.failed', 'backlog.exceeded', 'failures.digest')),
            subject               text NOT NULL,
            body                  text NOT NULL,
            data                  jsonb NOT NULL,
            email_status          text NOT NULL CHECK (email_status IN ('pending', 'sent', 'failed', 'none')),
            email_attempts        integer NOT NULL DEFAULT 0,
            email_next_attempt_at timestamptz NOT NULL DEFAULT now(),
            email_last_error      text,
            emailed_at            timestamptz,
            created_at            timestamptz NOT NULL DEFAULT now(),
            resolved_at           timestamptz
        );
        CREATE UNIQUE INDEX operator_notices_open ON operator_notices (coalesce(organization_id, 0), incident)
            WHERE resolved_at IS NULL;
        CREATE INDEX operator_notices_email_due ON operator_notices (email_next_attempt_at)
            WHERE email_status = 'pending';
        CREATE INDEX operator_notices_listing ON operator_notices (organization_id, id);

        ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
        ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check
            CHECK (cardinality(events) > 0 AND events <@ {ALL_EVENTS});
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        DELETE FROM webhooks WHERE NOT events <@ {PREVIOUS_EVENTS};
        ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
        ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check
            CHECK (cardinality(events) > 0 AND events <@ {PREVIOUS_EVENTS});
        DROP TABLE operator_notices;
        ALTER TABLE organizations DROP COLUMN notice_emails;
        """
    )

"""SMS outbox: every message is a row before anything is sent, and every attempt is kept.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sms_messages (
            id                  bigserial PRIMARY KEY,
            organization_id     bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            -- what makes producing the same message twice harmless: receipt:<response id>, flag:<flag id>, ...
            dedupe_key          text NOT NULL UNIQUE,
            kind                text NOT NULL CHECK (kind ~ '^[a-z][a-z_]{0,31}$'),
            recipient           text NOT NULL,
            body                text NOT NULL,
            template            text,
            encoding            text NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
            segments            integer NOT NULL,
            status              text NOT NULL DEFAULT 'queued'
                                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
            attempts            integer NOT NULL DEFAULT 0,
            next_attempt_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            -- the claim that moved the row to 'sending': who, when (a lease) and a token its outcome must match
            claim_token         uuid,
            claimed_at          timestamptz,
            -- set (and committed) just before the row is handed to the provider: a claim abandoned before
            -- this point was certainly not sent and can be queued again
            handed_at           timestamptz,
            provider            text,
            provider_message_id text,
            last_error          text,
            created_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
            sent_at             timestamptz
        );
        CREATE INDEX sms_messages_due ON sms_messages (next_attempt_at, id) WHERE status = 'queued';
        CREATE INDEX sms_messages_claimed ON sms_messages (claimed_at) WHERE status = 'sending';
        CREATE INDEX sms_messages_listing ON sms_messages (organization_id, status, kind, id);

        -- One row per attempt and per operator action, so a message's history survives its final state.
        CREATE TABLE sms_attempts (
            id              bigserial PRIMARY KEY,
            message_id      bigint NOT NULL REFERENCES sms_messages(id) ON DELETE CASCADE,
            attempt         integer NOT NULL,
            provider        text,
            outcome         text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed', 'unknown', 'resend')),
            http_status     integer,
            error_code      text,
            error           text,
            retry_after_s   double precision,
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX sms_attempts_message ON sms_attempts (message_id, id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE sms_attempts, sms_messages")

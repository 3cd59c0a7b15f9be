"""The SMS outbox speaks the webhook deliveries' word for a claim: `lease_until` (when the claim runs out),
set when a row is claimed, instead of `claimed_at` plus a lease length read when settling.

A message being sent during the upgrade keeps its claim: its lease ends `claimed_at` plus the configured lease
(FIELDPIPE_SMS_LEASE_S, as the dispatcher read it). The downgrade turns it back.

Revision ID: 0015_outbox_lease
Revises: 0014_pipeline_failures
"""

from alembic import op

from fieldpipe.config import SmsSettings

revision = "0015_outbox_lease"
down_revision = "0014_pipeline_failures"
branch_labels = None
depends_on = None


def _lease_s() -> float:
    return SmsSettings.from_env().lease_s


def upgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE sms_messages ADD COLUMN lease_until timestamptz;
        UPDATE sms_messages SET lease_until = claimed_at + make_interval(secs => {_lease_s()!r})
         WHERE status = 'sending' AND claimed_at IS NOT NULL;
        DROP INDEX sms_messages_claimed;
        ALTER TABLE sms_messages DROP COLUMN claimed_at;
        CREATE INDEX sms_messages_leased ON sms_messages (lease_until) WHERE status = 'sending';
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        ALTER TABLE sms_messages ADD COLUMN claimed_at timestamptz;
        UPDATE sms_messages SET claimed_at = lease_until - make_interval(secs => {_lease_s()!r})
         WHERE lease_until IS NOT NULL;
        DROP INDEX sms_messages_leased;
        ALTER TABLE sms_messages DROP COLUMN lease_until;
        CREATE INDEX sms_messages_claimed ON sms_messages (claimed_at) WHERE status = 'sending';
        """
    )

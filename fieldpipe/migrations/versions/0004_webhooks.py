"""Webhooks: registrations (with a per-endpoint circuit breaker), a deliveries outbox and every attempt.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhooks (
            id                   bigserial PRIMARY KEY,
            organization_id      bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            url                  text NOT NULL,
            events               text[] NOT NULL
                                 CHECK (cardinality(events) > 0 AND events <@ ARRAY['flag.opened', 'flag.resolved']),
            secret_sealed        text NOT NULL,          -- see fieldpipe/webhooks/secret_box.py
            created_at           timestamptz NOT NULL DEFAULT now(),
            deleted_at           timestamptz,            -- kept, so its deliveries' history stays readable
            -- circuit breaker: after repeated failures the endpoint as a whole waits until open_until
            consecutive_failures integer NOT NULL DEFAULT 0,
            open_until           timestamptz
        );
        CREATE INDEX webhooks_org ON webhooks (organization_id) WHERE deleted_at IS NULL;

        -- The outbox: one row per (webhook, event); the unique key makes producing an event twice harmless.
        CREATE TABLE webhook_deliveries (
            id               bigserial PRIMARY KEY,
            webhook_id       bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
            event            text NOT NULL,
            event_key        text NOT NULL,
            body             text NOT NULL,          -- the exact bytes signed and sent, the same on every attempt
            status           text NOT NULL DEFAULT 'queued'
                             CHECK (status IN ('queued', 'sending', 'delivered', 'failed', 'cancelled')),
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz NOT NULL DEFAULT now(),
            give_up_at       timestamptz NOT NULL,   -- end of the retry window
            lease_until      timestamptz,            -- a 'sending' row whose lease passed was abandoned by a worker
            last_status_code integer,
            last_error       text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now(),
            delivered_at     timestamptz,
            UNIQUE (webhook_id, event_key)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
            WHERE status IN ('queued', 'sending');
        CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, id);

        CREATE TABLE webhook_attempts (
            delivery_id  bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
            attempt      integer NOT NULL,
            started_at   timestamptz NOT NULL,
            duration_ms  integer NOT NULL,
            status_code  integer,
            error        text,
            outcome      text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
            PRIMARY KEY (delivery_id, attempt)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_attempts, webhook_deliveries, webhooks")

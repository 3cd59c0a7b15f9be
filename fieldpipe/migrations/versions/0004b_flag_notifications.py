"""The ledger of flag notifications: which response revisions were announced as flagged, and as resolved.

Revision ID: 0004b
Revises: 0004
"""

from alembic import op

revision = "0004b"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per (response revision, event) ever announced: the flag-callback producer inserts here first
        -- (ON CONFLICT DO NOTHING) and only the rows it inserted produce an SMS and webhook deliveries.
        CREATE TABLE flag_notifications (
            response_id bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision    integer NOT NULL,              -- the flagged revision
            event       text NOT NULL CHECK (event IN ('flag.opened', 'flag.resolved')),
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (response_id, revision, event)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE flag_notifications")

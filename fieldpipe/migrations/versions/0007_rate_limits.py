"""Rate limit budgets held in the database, so a rate holds across processes and Airflow workers.

One row per budget (e.g. `sms:twilio`, `sheets`, `webhook:<id>`): `next_free` is the moment the budget is
whole again (the "theoretical arrival time" of the generic cell rate algorithm). Every acquire is one
UPDATE of that row, so concurrent callers anywhere queue on its row lock for microseconds.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE rate_limits (
            name       text PRIMARY KEY,
            next_free  timestamptz NOT NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE rate_limits")

"""Pipeline failures per form (what a data team sees when one form cannot be processed) and the audit of
repairs made to rows stored before the API refused their values.

Revision ID: 0014_pipeline_failures
Revises: 0013_reporting
"""

from alembic import op

revision = "0014_pipeline_failures"
down_revision = "0013_reporting"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One row per (pipeline, form) that failed on its last attempt; removed when the form next succeeds.
        CREATE TABLE pipeline_failures (
            pipeline        text NOT NULL,
            form_id         bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            error           text NOT NULL,
            reason          text NOT NULL,
            failures        integer NOT NULL DEFAULT 1,
            first_failed_at timestamptz NOT NULL DEFAULT now(),
            last_failed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (pipeline, form_id)
        );

        -- What `fieldpipe repair` changed: the value as it was stored (as text), per response, revision and field.
        CREATE TABLE response_repairs (
            id          bigserial PRIMARY KEY,
            response_id bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision    integer NOT NULL,
            field       text NOT NULL,
            original    text NOT NULL,
            repaired_to text,
            repaired_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX response_repairs_response ON response_repairs (response_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE response_repairs; DROP TABLE pipeline_failures;")

"""Sheets export: state per (form, target, worksheet) and the map from submission to sheet row.

Revision ID: 0005
Revises: 0004b
"""

from alembic import op

revision = "0005"
down_revision = "0004b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE sheet_exports (
            id              bigserial PRIMARY KEY,
            form_id         bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            target          text NOT NULL,      -- 'google:<spreadsheet id>' or 'xlsx:<file name>'
            worksheet       text NOT NULL,      -- the configured tab; later tabs are '<worksheet> (2)', ...
            -- tabs in use, oldest first, each with its columns as written: [{"title", "columns": [[key, label], ...]}]
            worksheets      jsonb NOT NULL DEFAULT '[]',
            -- responses updated at or before this were exported (minus a look-back for late commits)
            watermark       timestamptz,
            last_run_at     timestamptz,
            last_status     text CHECK (last_status IN ('ok', 'blocked', 'failed')),
            last_report     jsonb,
            UNIQUE (form_id, target, worksheet)
        );

        -- Where each response's row is, and what was written there (NULL revision: found in the sheet,
        -- content unknown, so it is rewritten). Rebuilt from the sheet's id column on every run with work.
        CREATE TABLE sheet_rows (
            export_id       bigint NOT NULL REFERENCES sheet_exports(id) ON DELETE CASCADE,
            submission_id   uuid NOT NULL,
            worksheet       text NOT NULL,
            row_number      integer NOT NULL,
            revision        integer,
            open_flags      integer,
            PRIMARY KEY (export_id, submission_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE sheet_rows, sheet_exports")

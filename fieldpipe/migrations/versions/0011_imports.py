"""Bulk imports: one row per imported file (status, counts, resume point) and each invalid row's errors.

Revision ID: 0011_imports
Revises: 0010_enrollments
"""

from alembic import op

revision = "0011_imports"
down_revision = "0010_enrollments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE imports (
            id              uuid PRIMARY KEY,
            -- null when a file was dropped under a prefix naming no organization or no form: it is refused
            organization_id bigint REFERENCES organizations(id) ON DELETE CASCADE,
            form_id         bigint REFERENCES forms(id) ON DELETE CASCADE,
            org_slug        text NOT NULL,
            form_slug       text NOT NULL,
            file_name       text NOT NULL,
            source          text NOT NULL CHECK (source IN ('upload', 's3')),
            object_key      text NOT NULL,      -- where the file is now: incoming/ until it ends in processed/ or failed/
            status          text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
            code            text,               -- why a whole file was refused, e.g. 'unknown_column'
            reason          text,
            content_hash    text,               -- sha256 of the file; derived submission ids hang on it
            rows            integer NOT NULL DEFAULT 0,     -- data rows committed so far: the resume point
            created         integer NOT NULL DEFAULT 0,
            duplicate       integer NOT NULL DEFAULT 0,
            conflict        integer NOT NULL DEFAULT 0,
            invalid         integer NOT NULL DEFAULT 0,
            report_key      text,
            attempts        integer NOT NULL DEFAULT 0,     -- runs started; a file that keeps crashing them is failed
            created_at      timestamptz NOT NULL DEFAULT now(),
            started_at      timestamptz,
            finished_at     timestamptz,
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        -- One live import per stored file: a file seen again while queued or running is the same import.
        CREATE UNIQUE INDEX imports_live_object ON imports (object_key) WHERE status IN ('queued', 'running');
        CREATE INDEX imports_form_created ON imports (form_id, created_at, id);

        CREATE TABLE import_errors (
            import_id   uuid NOT NULL REFERENCES imports(id) ON DELETE CASCADE,
            row_number  integer NOT NULL,       -- as a spreadsheet counts: the header is row 1
            column_name text NOT NULL,
            code        text NOT NULL,
            reason      text NOT NULL,
            PRIMARY KEY (import_id, row_number, column_name, code)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE import_errors, imports")

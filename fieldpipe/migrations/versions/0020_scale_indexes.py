"""Indexes for hundreds of forms and millions of responses (issue 23).

`responses_form_updated` serves the per-form scans that run every few minutes: a form's responses changed
since its validation watermark (`validate_responses`), since its export's watermark (`export_sheets`), and
the count of each form's pending work that groups forms into tasks. Without it each form's scan walks
every form's recent changes through `responses_updated`, so a run costs forms x new responses.

Built CONCURRENTLY, outside the migration's transaction, so converting a live database with millions of
responses does not block ingestion while it builds (`fieldpipe migrate` / `make up` run it).

Revision ID: 0020_scale_indexes
Revises: 0019_announcements
"""

from alembic import op

revision = "0020_scale_indexes"
down_revision = "0019_announcements"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.get_context().autocommit_block():
        # A build interrupted earlier leaves an invalid index of this name behind: drop it and build again.
        op.execute("""
            DO $$ BEGIN
              IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                          WHERE c.relname = 'responses_form_updated' AND NOT i.indisvalid) THEN
                DROP INDEX responses_form_updated;
              END IF;
            END $$""")
        op.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS responses_form_updated ON responses (form_id, updated_at)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS responses_form_updated")

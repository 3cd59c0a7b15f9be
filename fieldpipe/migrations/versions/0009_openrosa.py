"""OpenRosa: forms defined by an XForm (from an XLSForm), the device's instance ids, submission attachments.

- `forms.xform_id` is the XForm's `id`, which devices put on every submission's root; unique per organization.
- `form_versions.xform` keeps the XForm served to devices for that version, `xform_version` its version.
- `openrosa_instances` maps each instance id a device sent (the first one and every edit's) to the response
  and the revision it made, so a retried edit is recognised and an edit of an edit finds its response.
- `attachments` lists the files a response's answers name; `object_key` stays NULL until the file arrives
  (Collect may split one submission's files across several posts).
- `sheet_repeat_rows` maps each repeat item exported to Sheets to its row (fieldpipe/sheets/repeats.py).

Revision ID: 0009_openrosa
Revises: 0008_rules_versions
"""

from alembic import op

revision = "0009_openrosa"
down_revision = "0008_rules_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE forms ADD COLUMN xform_id text;
        CREATE UNIQUE INDEX forms_xform_id ON forms (organization_id, xform_id) WHERE xform_id IS NOT NULL;
        ALTER TABLE form_versions ADD COLUMN xform text, ADD COLUMN xform_version text;

        CREATE TABLE openrosa_instances (
            form_id      bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            instance_id  text NOT NULL,
            response_id  bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision     integer NOT NULL,
            PRIMARY KEY (form_id, instance_id)
        );

        CREATE TABLE attachments (
            id            bigserial PRIMARY KEY,
            response_id   bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            name          text NOT NULL,
            question_type text NOT NULL,
            object_key    text,
            content_type  text,
            size          bigint,
            sha256        text,
            received_at   timestamptz,
            UNIQUE (response_id, name)
        );

        CREATE TABLE sheet_repeat_rows (
            export_id     bigint NOT NULL REFERENCES sheet_exports(id) ON DELETE CASCADE,
            repeat_key    text NOT NULL,
            submission_id uuid NOT NULL,
            item_index    integer NOT NULL,
            row_number    integer NOT NULL,
            revision      integer NOT NULL,
            PRIMARY KEY (export_id, repeat_key, submission_id, item_index)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE sheet_repeat_rows, attachments, openrosa_instances;
        ALTER TABLE form_versions DROP COLUMN xform, DROP COLUMN xform_version;
        DROP INDEX forms_xform_id;
        ALTER TABLE forms DROP COLUMN xform_id;
        """
    )

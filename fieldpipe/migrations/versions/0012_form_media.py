"""Form media: the files an XForm shows (images, audio, CSV for choices), served to devices through the manifest.

Revision ID: 0012_form_media
Revises: 0011_imports
"""

from alembic import op

revision = "0012_form_media"
down_revision = "0011_imports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE form_media (
            form_id      bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            name         text NOT NULL,
            object_key   text NOT NULL,
            content_type text NOT NULL,
            size         bigint NOT NULL,
            md5          text NOT NULL,
            uploaded_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (form_id, name)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE form_media")

"""Foundation: organizations, API keys, versioned forms, responses and their revisions.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE organizations (
            id          bigserial PRIMARY KEY,
            slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
            name        text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE api_keys (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            key_hash        text NOT NULL UNIQUE,   -- SHA-256 hex of the whole key; the key itself is never stored
            display_prefix  text NOT NULL,          -- first characters, to tell keys apart in listings
            role            text NOT NULL CHECK (role IN ('admin', 'collector')),
            label           text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            revoked_at      timestamptz
        );

        CREATE TABLE forms (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            slug            text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
            title           text NOT NULL,
            settings        jsonb NOT NULL DEFAULT '{}',
            current_version integer NOT NULL DEFAULT 1,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organization_id, slug)
        );

        -- A form's questions, frozen per version: responses keep the version they answered.
        CREATE TABLE form_versions (
            id          bigserial PRIMARY KEY,
            form_id     bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            version     integer NOT NULL,
            questions   jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (form_id, version)
        );

        CREATE TABLE responses (
            id              bigserial PRIMARY KEY,
            form_id         bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            form_version_id bigint NOT NULL REFERENCES form_versions(id),
            submission_id   uuid NOT NULL,
            collector_id    text NOT NULL,
            collector_phone text,
            submitted_at    timestamptz NOT NULL,
            received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
            updated_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            revision        integer NOT NULL DEFAULT 1,
            answers         jsonb NOT NULL,
            -- hash of the first submission's content: a retry of that post is a duplicate, anything else a conflict
            content_hash    text NOT NULL,
            -- words of the text answers, split and case-folded in Python so any script (Devanagari too) is searchable
            search_words    text[] NOT NULL DEFAULT '{}',
            UNIQUE (form_id, submission_id)
        );
        CREATE INDEX responses_form_received ON responses (form_id, received_at, id);
        CREATE INDEX responses_updated ON responses (updated_at, id);
        CREATE INDEX responses_answers ON responses USING gin (answers jsonb_path_ops);
        CREATE INDEX responses_search_words ON responses USING gin (search_words);

        -- Every revision, the current one included, so history is complete and retrievable.
        CREATE TABLE response_revisions (
            response_id     bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision        integer NOT NULL,
            form_version_id bigint NOT NULL REFERENCES form_versions(id),
            collector_id    text NOT NULL,
            collector_phone text,
            submitted_at    timestamptz NOT NULL,
            answers         jsonb NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (response_id, revision)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE response_revisions, responses, form_versions, forms, api_keys, organizations"
    )

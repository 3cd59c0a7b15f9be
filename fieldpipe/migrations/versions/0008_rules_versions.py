"""Business rules stored per form of an organization, versioned; flags record the version that raised them;
dry runs of proposed rules that are too large to answer at once run as jobs.

Revision ID: 0008_rules_versions
Revises: 0007
"""

from alembic import op

revision = "0008_rules_versions"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- Every change of a form's rules is a new version; versions are never edited or deleted.
        CREATE TABLE rules_versions (
            id          bigserial PRIMARY KEY,
            form_id     bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            version     integer NOT NULL CHECK (version > 0),
            document    jsonb NOT NULL,            -- {"rules": [...], "expectations": [...]}
            created_by  text NOT NULL,             -- "api key fpk_abc123 (admin)", "cli:<user>", "demo loader"
            api_key_id  bigint REFERENCES api_keys(id),
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (form_id, version)
        );
        -- The version in force; NULL when the form never had rules. Read with the form on every request,
        -- so a process's cache of checked rules knows at once when it is stale.
        ALTER TABLE forms ADD COLUMN rules_version integer;
        ALTER TABLE flags ADD COLUMN rules_version integer;

        CREATE TABLE rules_dry_runs (
            id           bigserial PRIMARY KEY,
            form_id      bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            document     jsonb NOT NULL,
            latest       integer,                  -- only the latest N responses; NULL for all
            status       text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
            result       jsonb,
            error        text,
            created_by   text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            lease_until  timestamptz,              -- a running job whose lease passed was interrupted
            finished_at  timestamptz
        );
        CREATE INDEX rules_dry_runs_form ON rules_dry_runs (form_id, id);

        -- The first n values aggregated (in input order): a dry run's examples without collecting every violation.
        CREATE FUNCTION fieldpipe_first_n_step(state bigint[], value bigint, n integer) RETURNS bigint[]
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN cardinality(state) >= n THEN state ELSE state || value END;
        CREATE AGGREGATE fieldpipe_first_n(bigint, integer) (
            SFUNC = fieldpipe_first_n_step, STYPE = bigint[], INITCOND = '{}'
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP AGGREGATE fieldpipe_first_n(bigint, integer);
        DROP FUNCTION fieldpipe_first_n_step(bigint[], bigint, integer);
        DROP TABLE rules_dry_runs, rules_versions;
        ALTER TABLE flags DROP COLUMN rules_version;
        ALTER TABLE forms DROP COLUMN rules_version;
        """
    )

"""Flags raised by business rules, the validation watermark per form, and rule division.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- One flag per (response, revision, rule): rerunning validation upserts instead of adding.
        CREATE TABLE flags (
            id           bigserial PRIMARY KEY,
            form_id      bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            response_id  bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision     integer NOT NULL,
            rule_id      text NOT NULL,
            severity     text NOT NULL CHECK (severity IN ('error', 'warning')),
            notify       text NOT NULL CHECK (notify IN ('collector', 'none')),
            message      text NOT NULL,
            status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
            -- passed: the response was fixed; superseded: a newer revision was validated; rule_removed: gone from the file
            close_reason text CHECK (close_reason IN ('passed', 'superseded', 'rule_removed')),
            opened_at    timestamptz NOT NULL DEFAULT now(),
            closed_at    timestamptz,
            CHECK ((status = 'open') = (closed_at IS NULL AND close_reason IS NULL)),
            UNIQUE (response_id, revision, rule_id)
        );
        CREATE INDEX flags_form ON flags (form_id, id);
        CREATE INDEX flags_open_by_form ON flags (form_id, id) WHERE status = 'open';

        -- Responses with updated_at after validated_through still need validating under this rules file.
        CREATE TABLE validation_watermarks (
            form_id           bigint PRIMARY KEY REFERENCES forms(id) ON DELETE CASCADE,
            rules_fingerprint text NOT NULL,
            validated_through timestamptz NOT NULL,
            updated_at        timestamptz NOT NULL DEFAULT now()
        );

        -- a / b in rules: exact quotient rounded half away from zero to 10 places, NULL when b = 0.
        -- fieldpipe.rules.inprocess.divide takes the same integer steps, so both executors agree.
        CREATE FUNCTION fieldpipe_rule_div(a numeric, b numeric) RETURNS numeric
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN b = 0 THEN NULL ELSE
                (div(a * 10000000000, b)
                 + CASE WHEN 2 * abs(mod(a * 10000000000, b)) >= abs(b) THEN sign(a) * sign(b) ELSE 0 END
                ) * 0.0000000001 END;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION fieldpipe_rule_div(numeric, numeric); DROP TABLE validation_watermarks, flags")

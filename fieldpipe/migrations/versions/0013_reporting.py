"""The `reporting` schema: masked, typed views for BI tools, and the `fieldpipe_reporting` role that reads only them.

Per-form views are (re)built by `fieldpipe.reporting.views` whenever a form's questions change; this
migration makes the schema, the masking functions every view uses, and the views that are the same for
every organization (flags, assessment summaries).

The role is cluster-wide, so it is created only when missing and only when the migrating user may create
roles (a managed database may not allow it: then a DBA creates it and runs `fieldpipe reporting refresh`,
which grants it every view).

Revision ID: 0013_reporting
Revises: 0012_form_media
"""

import phonenumbers
from alembic import op

revision = "0013_reporting"
down_revision = "0012_form_media"
branch_labels = None
depends_on = None

# E.164 country calling codes are prefix-free: a number's code is its first digit (1, 7), else its first two
# digits when they are a code, else its first three.
_CODES = sorted(str(code) for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
_ONE_DIGIT = ", ".join(f"'{c}'" for c in _CODES if len(c) == 1)
_TWO_DIGITS = ", ".join(f"'{c}'" for c in _CODES if len(c) == 2)
_CC = ("CASE WHEN left(ltrim(phone, '+'), 1) IN (" + _ONE_DIGIT + ") THEN left(ltrim(phone, '+'), 1)"
       " WHEN left(ltrim(phone, '+'), 2) IN (" + _TWO_DIGITS + ") THEN left(ltrim(phone, '+'), 2)"
       " ELSE left(ltrim(phone, '+'), 3) END")


def upgrade() -> None:
    op.execute(f"""
        CREATE SCHEMA reporting;
        COMMENT ON SCHEMA reporting IS 'Masked, typed copies of fieldpipe data for BI tools; see README "Reporting"';

        -- +919876543210 -> +91******3210, as fieldpipe.sheets.layout.mask_phone does it for the E.164 numbers
        -- fieldpipe stores. One expression, no sub-select, so PostgreSQL inlines it into each view.
        CREATE FUNCTION reporting.mask_phone(phone text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN '+' || {_CC}
                || repeat('*', greatest(length(ltrim(phone, '+')) - length({_CC}) - 4, 0))
                || right(ltrim(phone, '+'), least(4, greatest(length(ltrim(phone, '+')) - length({_CC}), 0)));

        -- ana@example.org -> a***@example.org
        CREATE FUNCTION reporting.mask_email(email text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN email IS NULL THEN NULL
                        WHEN position('@' in email) = 0 THEN '***'
                        ELSE left(email, 1) || '***@' || split_part(email, '@', 2) END;

        -- A stable pseudonym for grouping equal free-text answers; documented as guessable for small domains.
        CREATE FUNCTION reporting.pseudonym(value text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN value IS NULL THEN NULL
                        ELSE left(encode(sha256(convert_to(value, 'UTF8')), 'hex'), 16) END;

        -- A CSV cell a spreadsheet would run as a formula gets a leading apostrophe. Digits, dots, stars and
        -- spaces alone (-5, +91******3210) cannot call a function, so they stay as they are.
        CREATE FUNCTION reporting.csv_safe(value text) RETURNS text
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            RETURN CASE WHEN value ~ '^[-=+@\\t\\r]' AND substr(value, 2) ~ '[^0-9.* ]' THEN '''' || value
                        ELSE value END;

        CREATE VIEW reporting.flags AS
        SELECT o.slug AS organization, f.slug AS form, r.submission_id, fl.revision, fl.rule_id, fl.severity,
               fl.status, fl.close_reason, fl.opened_at, fl.closed_at
          FROM flags fl
          JOIN responses r ON r.id = fl.response_id
          JOIN forms f ON f.id = fl.form_id
          JOIN organizations o ON o.id = f.organization_id;

        CREATE VIEW reporting.assessment_summaries AS
        SELECT o.slug AS organization, a.id AS assessment_id, a.title AS assessment, s.summary_date, s.level,
               s.entity, s.district, s.block, s.school_id, s.class_id, i.id AS item_id, i.label AS item,
               s.students_assessed, s.students_present, s.students_passing,
               round(100.0 * s.students_passing / nullif(s.students_assessed, 0), 1) AS percent_passing,
               s.mean_marks, s.median_marks, s.grade_distribution
          FROM assessment_summaries s
          JOIN assessments a ON a.id = s.assessment_id
          JOIN assessment_items i ON i.id = s.item_id
          JOIN organizations o ON o.id = a.organization_id;

        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldpipe_reporting') THEN
                CREATE ROLE fieldpipe_reporting NOLOGIN;
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role fieldpipe_reporting here: create it, then run fieldpipe reporting refresh';
        END $$;
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldpipe_reporting') THEN
                GRANT USAGE ON SCHEMA reporting TO fieldpipe_reporting;
                GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO fieldpipe_reporting;
                ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO fieldpipe_reporting;
            END IF;
        END $$;
    """)


def downgrade() -> None:
    op.execute("""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'fieldpipe_reporting') THEN
                ALTER DEFAULT PRIVILEGES IN SCHEMA reporting REVOKE SELECT ON TABLES FROM fieldpipe_reporting;
            END IF;
        END $$;
        DROP SCHEMA reporting CASCADE;
    """)

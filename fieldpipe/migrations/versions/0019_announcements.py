"""Announcements to parents: SMS templates, announcements and their recipients, each organization's SMS policy
(time zone, quiet hours, daily cap per recipient, DLT registration, approval threshold), and what the outbox
needs for them: a `cancelled` state, the recipient's time zone, the sender id and DLT template id, and the
segment counting of fieldpipe/sms/segments.py as SQL functions so a fan-out counts in the statement that enqueues.

The legacy `students.parent_phone` is folded into `guardians` (a guardian named "Parent") for students that
have a phone there and no guardian yet; announcements read guardians only.

Revision ID: 0019_announcements
Revises: 0018_student_results
"""

from alembic import op

revision = "0019_announcements"
down_revision = "0018_student_results"
branch_labels = None
depends_on = None

# GSM 03.38 (basic set and extension table) as regular-expression classes; mirrors fieldpipe/sms/segments.py
# (tests/test_announcements.py checks that the two agree).
GSM7_CLASS = (r"[\u000a\u000c\u000d\u0020-\u005f\u0061-\u007e\u00a1\u00a3\u00a4\u00a5\u00a7\u00bf\u00c4\u00c5"
              r"\u00c6\u00c7\u00c9\u00d1\u00d6\u00d8\u00dc\u00df\u00e0\u00e4\u00e5\u00e6\u00e8\u00e9\u00ec\u00f1"
              r"\u00f2\u00f6\u00f8\u00f9\u00fc\u0393\u0394\u0398\u039b\u039e\u03a0\u03a3\u03a6\u03a8\u03a9\u20ac]")
GSM7_EXTENSION_CLASS = r"[\u000c\u005b-\u005e\u007b-\u007e\u20ac]"
ASTRAL_CLASS = r"[\U00010000-\U0010ffff]"  # two UTF-16 units in UCS-2

FUNCTIONS = r"""
CREATE FUNCTION sms_encoding(body text) RETURNS text IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $f$
    SELECT CASE WHEN body ~ '^GSM7*$' THEN 'GSM-7' ELSE 'UCS-2' END
$f$;

-- Segments a carrier bills: one part up to 160 septets (GSM-7) or 70 UTF-16 units (UCS-2), else parts of
-- 153 or 67. Without two-unit characters (GSM-7 escapes, UCS-2 surrogate pairs) that is a division, inlined
-- into the caller's query; with them, sms_segments_greedy fills the parts, never splitting such a character.
CREATE FUNCTION sms_segments_greedy(body text, gsm boolean) RETURNS integer IMMUTABLE PARALLEL SAFE
LANGUAGE plpgsql AS $f$
DECLARE
    wide text := CASE WHEN gsm THEN 'EXT' ELSE 'ASTRAL' END;
    chars integer := char_length(body);
    units integer := chars + chars - char_length(regexp_replace(body, wide, '', 'g'));
    single integer := CASE WHEN gsm THEN 160 ELSE 70 END;
    part integer := CASE WHEN gsm THEN 153 ELSE 67 END;
    parts integer := 1;
    used integer := 0;
    size integer;
    ch text;
BEGIN
    IF units <= single THEN
        RETURN least(units, 1);
    END IF;
    FOREACH ch IN ARRAY regexp_split_to_array(body, '') LOOP
        size := 1 + (ch ~ wide)::integer;
        IF used + size > part THEN
            parts := parts + 1;
            used := 0;
        END IF;
        used := used + size;
    END LOOP;
    RETURN parts;
END
$f$;

CREATE FUNCTION sms_segments(body text) RETURNS integer IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $f$
    SELECT CASE
        WHEN body ~ '^GSM7*$' THEN
            CASE WHEN body ~ 'EXT' THEN sms_segments_greedy(body, true)
                 WHEN char_length(body) <= 160 THEN least(char_length(body), 1)
                 ELSE (char_length(body) + 152) / 153 END
        WHEN body ~ 'ASTRAL' THEN sms_segments_greedy(body, false)
        WHEN char_length(body) <= 70 THEN least(char_length(body), 1)
        ELSE (char_length(body) + 66) / 67
    END
$f$;

-- When quiet hours [quiet_start, quiet_end) in time zone `tz` hold `at_time`, the instant they end; else NULL.
-- A window whose start is after its end spans midnight (21:00-07:00).
CREATE FUNCTION sms_quiet_until(at_time timestamptz, tz text, quiet_start time, quiet_end time) RETURNS timestamptz
STABLE PARALLEL SAFE LANGUAGE sql AS $f$
    SELECT CASE
        WHEN quiet_start IS NULL OR quiet_end IS NULL OR quiet_start = quiet_end THEN NULL
        WHEN quiet_start < quiet_end THEN
            CASE WHEN local_ts::time >= quiet_start AND local_ts::time < quiet_end
                 THEN (local_ts::date + quiet_end) AT TIME ZONE tz END
        WHEN local_ts::time >= quiet_start THEN (local_ts::date + 1 + quiet_end) AT TIME ZONE tz
        WHEN local_ts::time < quiet_end THEN (local_ts::date + quiet_end) AT TIME ZONE tz
    END
      FROM (SELECT at_time AT TIME ZONE tz AS local_ts) l
$f$;
""".replace("GSM7", GSM7_CLASS).replace("'EXT'", f"'{GSM7_EXTENSION_CLASS}'").replace("'ASTRAL'", f"'{ASTRAL_CLASS}'")


def upgrade() -> None:
    op.execute(FUNCTIONS)
    op.execute(
        """
        -- How an organization's announcements are sent. No row: the defaults below.
        CREATE TABLE sms_policies (
            organization_id    bigint PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
            time_zone          text NOT NULL DEFAULT 'Asia/Kolkata',   -- of schools without their own
            quiet_start        time,         -- no announcement is sent from quiet_start to quiet_end, local time
            quiet_end          time,
            daily_cap          integer CHECK (daily_cap >= 1),         -- announcements per recipient per local day
            dlt_required       boolean NOT NULL DEFAULT false,         -- templates need a DLT id and sender id
            sender_id          text,                                   -- default sender id (header)
            approval_threshold integer NOT NULL DEFAULT 1000 CHECK (approval_threshold >= 0),
            updated_at         timestamptz NOT NULL DEFAULT now(),
            CHECK ((quiet_start IS NULL) = (quiet_end IS NULL))
        );

        ALTER TABLE schools ADD COLUMN time_zone text;   -- NULL: the organization's (sms_policies.time_zone)

        CREATE TABLE sms_templates (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            name            text NOT NULL,
            kind            text NOT NULL CHECK (kind IN ('holiday', 'ptm', 'exam', 'result', 'homework', 'custom')),
            bodies          jsonb NOT NULL,                 -- {"hi": "...", "en": "..."}
            placeholders    text[] NOT NULL DEFAULT '{}',   -- the names a custom template declares
            dlt_template_id text,
            sender_id       text,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organization_id, name)
        );

        CREATE TABLE announcements (
            id                  bigserial PRIMARY KEY,
            organization_id     bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            template_id         bigint NOT NULL REFERENCES sms_templates(id),
            kind                text NOT NULL,
            -- the template's bodies with the announcement's values filled in, frozen when it was made, so an
            -- approver approves the text that goes out and a later template edit changes nothing
            bodies              jsonb NOT NULL,
            default_language    text NOT NULL,
            dlt_template_id     text,
            sender_id           text,
            "values"            jsonb NOT NULL DEFAULT '{}',
            audience            jsonb NOT NULL,
            send_at             timestamptz NOT NULL,
            status              text NOT NULL CHECK (status IN ('awaiting_approval', 'scheduled', 'sending', 'cancelled')),
            expected_recipients integer NOT NULL,   -- resolved when it was made (the count the POST answered)
            created_by          bigint REFERENCES api_keys(id),
            approved_by         bigint REFERENCES api_keys(id),
            approved_at         timestamptz,
            cancelled_by        bigint REFERENCES api_keys(id),
            cancelled_at        timestamptz,
            fanned_out_at       timestamptz,
            created_at          timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX announcements_due ON announcements (send_at, id) WHERE status = 'scheduled';
        CREATE INDEX announcements_org ON announcements (organization_id, id);

        -- Who an announcement reached, resolved when it is sent: one row per guardian phone (per phone and
        -- child for results), and one per student without a phone. `dedupe_key` is the outbox message's.
        CREATE TABLE announcement_recipients (
            announcement_id bigint NOT NULL REFERENCES announcements(id) ON DELETE CASCADE,
            recipient_key   text NOT NULL,
            phone           text,
            student_ids     bigint[] NOT NULL,
            language        text,
            time_zone       text,
            fields          jsonb NOT NULL DEFAULT '{}',   -- the per-recipient placeholders
            status          text NOT NULL CHECK (status IN ('pending', 'skipped')),
            reason          text,
            dedupe_key      text,
            PRIMARY KEY (announcement_id, recipient_key)
        );

        ALTER TABLE sms_messages
            DROP CONSTRAINT sms_messages_status_check,
            ADD CONSTRAINT sms_messages_status_check
                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown', 'cancelled')),
            ADD COLUMN time_zone text,          -- the recipient's, for quiet hours and the daily cap
            ADD COLUMN sender_id text,
            ADD COLUMN dlt_template_id text;
        -- the daily cap counts a recipient's announcements sent or being sent since local midnight (rows enter
        -- it when claimed, so enqueueing a large announcement does not maintain it)
        CREATE INDEX sms_messages_recipient_day ON sms_messages (recipient, updated_at)
            WHERE kind = 'announcement' AND status IN ('sending', 'sent', 'unknown');

        INSERT INTO guardians (student_id, position, name, relation, phone)
        SELECT s.id, 1, 'Parent', 'guardian', s.parent_phone
          FROM students s
         WHERE s.parent_phone IS NOT NULL AND NOT EXISTS (SELECT 1 FROM guardians g WHERE g.student_id = s.id);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP INDEX sms_messages_recipient_day;
        UPDATE sms_messages SET status = 'failed', last_error = 'cancelled' WHERE status = 'cancelled';
        ALTER TABLE sms_messages
            DROP CONSTRAINT sms_messages_status_check,
            ADD CONSTRAINT sms_messages_status_check
                CHECK (status IN ('queued', 'sending', 'sent', 'failed', 'unknown')),
            DROP COLUMN time_zone, DROP COLUMN sender_id, DROP COLUMN dlt_template_id;
        DROP TABLE announcement_recipients, announcements, sms_templates, sms_policies;
        ALTER TABLE schools DROP COLUMN time_zone;
        DROP FUNCTION sms_quiet_until(timestamptz, text, time, time), sms_segments(text),
                      sms_segments_greedy(text, boolean), sms_encoding(text);
        """
    )

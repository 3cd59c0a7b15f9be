"""Enrollment: student records with guardians, enrollment periods, school leaving certificates (SLCs) signed with
the organization's Ed25519 keys, out-of-state transfers waiting for review, and an audit log.

An enrollment period says the student was in a class from `started_on` to `ended_on` (open while current);
a mark counts in its class when the student's period there had not ended when it was received, so a transfer
does not move old marks. Existing and imported students get one open period whose start is unknown (NULL).

Revision ID: 0010_enrollments
Revises: 0009_openrosa
"""

from alembic import op

revision = "0010_enrollments"
down_revision = "0009_openrosa"
branch_labels = None
depends_on = None

# The anomalies view of 0006 with its student_of_another_class rule as a parameter.
ANOMALIES_VIEW = """
    CREATE OR REPLACE VIEW assessment_anomalies AS
    SELECT 'marks_above_max' AS kind, m.assessment_id, m.class_id, m.id AS row_id, m.received_at
      FROM student_marks m JOIN assessment_items i ON i.id = m.item_id
     WHERE m.marks > i.max_marks OR m.marks < 0
    UNION ALL
    SELECT 'marks_for_deleted_student', m.assessment_id, m.class_id, m.id, m.received_at
      FROM student_marks m JOIN students s ON s.id = m.student_id
     WHERE s.deleted_at IS NOT NULL AND m.received_at >= s.deleted_at
    UNION ALL
    SELECT 'student_of_another_class', m.assessment_id, m.class_id, m.id, m.received_at
      FROM student_marks m {another_class}
    UNION ALL
    SELECT 'cleared_above_present', r.assessment_id, r.class_id, r.id, r.received_at
      FROM class_results r
     WHERE r.students_cleared > r.students_present OR r.students_cleared < 0
    UNION ALL
    SELECT 'answer_to_unknown_question', a.assessment_id, a.class_id, a.id, a.received_at
      FROM exam_answers a LEFT JOIN assessment_items i ON i.id = a.item_id AND i.assessment_id = a.assessment_id
     WHERE i.id IS NULL
"""
# A mark is anomalous when the student was not in the mark's class when it was received (0010),
# not merely when they are in another class now (0006).
IN_ANOTHER_CLASS_WHEN_MARKED = """
     WHERE NOT EXISTS (SELECT 1 FROM enrollments e
                        WHERE e.student_id = m.student_id AND e.class_id = m.class_id
                          AND (e.ended_on IS NULL OR m.received_at < (e.ended_on + 1)::timestamp AT TIME ZONE 'UTC'))"""
IN_ANOTHER_CLASS_NOW = "JOIN students s ON s.id = m.student_id WHERE s.class_id <> m.class_id"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE students
            ADD COLUMN date_of_birth    date,
            ADD COLUMN gender           text CHECK (gender IN ('female', 'male', 'other')),
            ADD COLUMN admission_number text,
            ADD COLUMN previous_school  text,
            ADD COLUMN left_on          date;   -- left with a certificate, not (yet) enrolled elsewhere
        CREATE INDEX students_birth ON students (date_of_birth) WHERE date_of_birth IS NOT NULL;

        -- Parents and other contacts of a student; phone in E.164. Read by announcements (issue 18) too.
        CREATE TABLE guardians (
            id         bigserial PRIMARY KEY,
            student_id bigint NOT NULL REFERENCES students(id) ON DELETE CASCADE,
            position   integer NOT NULL,
            name       text NOT NULL,
            relation   text NOT NULL,
            phone      text,
            language   text NOT NULL DEFAULT 'hi' CHECK (language ~ '^[a-z]{2}$'),
            opted_out  boolean NOT NULL DEFAULT false,
            UNIQUE (student_id, position)
        );
        CREATE INDEX guardians_phone ON guardians (phone) WHERE phone IS NOT NULL;

        CREATE TABLE enrollments (
            id         bigserial PRIMARY KEY,
            student_id bigint NOT NULL REFERENCES students(id) ON DELETE CASCADE,
            school_id  bigint NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
            class_id   bigint NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
            started_on date,                 -- NULL: admitted before fieldpipe knew (roster imports)
            ended_on   date CHECK (ended_on >= started_on),
            started_by text NOT NULL CHECK (started_by IN ('roster', 'admission', 'transfer', 'out_of_state')),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX enrollments_current ON enrollments (student_id) WHERE ended_on IS NULL;
        CREATE INDEX enrollments_student_class ON enrollments (student_id, class_id);

        INSERT INTO enrollments (student_id, school_id, class_id, started_on, started_by)
        SELECT st.id, c.school_id, st.class_id, NULL, 'roster'
          FROM students st JOIN classes c ON c.id = st.class_id;

        -- The organization's certificate signing keys. The private key is sealed like webhook secrets
        -- (Fernet with FIELDPIPE_SECRET_KEY). Retired keys no longer sign but still verify; revoked ones do not.
        CREATE TABLE slc_signing_keys (
            kid             text PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            public_key      bytea NOT NULL,
            private_key     text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            retired_at      timestamptz,
            revoked_at      timestamptz
        );
        CREATE UNIQUE INDEX slc_signing_keys_active ON slc_signing_keys (organization_id)
            WHERE retired_at IS NULL AND revoked_at IS NULL;

        CREATE TABLE school_leaving_certificates (
            id                    uuid PRIMARY KEY,
            organization_id       bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            student_id            bigint NOT NULL REFERENCES students(id) ON DELETE CASCADE,
            enrollment_id         bigint NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
            kid                   text NOT NULL REFERENCES slc_signing_keys(kid),
            reason                text NOT NULL,
            leaving_date          date NOT NULL,
            qr_payload            text NOT NULL,
            pdf_key               text NOT NULL,
            issued_at             timestamptz NOT NULL DEFAULT now(),
            revoked_at            timestamptz,
            used_at               timestamptz,
            used_by_enrollment_id bigint REFERENCES enrollments(id) ON DELETE SET NULL
        );
        CREATE INDEX school_leaving_certificates_student ON school_leaving_certificates (student_id);

        -- A student admitted from another state's school: the document's details wait for a person's review.
        CREATE TABLE out_of_state_transfers (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            student_id      bigint NOT NULL REFERENCES students(id) ON DELETE CASCADE,
            enrollment_id   bigint NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
            document        jsonb NOT NULL,
            status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'accepted', 'rejected')),
            review_note     text,
            reviewed_at     timestamptz,
            reviewed_by     bigint REFERENCES api_keys(id),
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX out_of_state_transfers_org ON out_of_state_transfers (organization_id, status, id);

        -- Who did what: one row per enrollment, leaving, transfer, review and key change, with the API key.
        CREATE TABLE audit_log (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            api_key_id      bigint REFERENCES api_keys(id),   -- NULL for the command line and the demo loader
            action          text NOT NULL,
            subject         text NOT NULL,
            details         jsonb NOT NULL DEFAULT '{}',
            at              timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX audit_log_org ON audit_log (organization_id, id);
        """
    )
    op.execute(ANOMALIES_VIEW.format(another_class=IN_ANOTHER_CLASS_WHEN_MARKED))


def downgrade() -> None:
    op.execute(ANOMALIES_VIEW.format(another_class=IN_ANOTHER_CLASS_NOW))
    op.execute(
        """
        DROP TABLE audit_log, out_of_state_transfers, school_leaving_certificates, slc_signing_keys, enrollments,
                   guardians;
        ALTER TABLE students DROP COLUMN date_of_birth, DROP COLUMN gender, DROP COLUMN admission_number,
                             DROP COLUMN previous_school, DROP COLUMN left_on;
        """
    )

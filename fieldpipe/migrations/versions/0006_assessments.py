"""Assessments: schools, classes, students, subjects, assessments with items, submissions, exam answers, summaries.

Marks and class results are append-only with a validity range: a newer entry for the same
(assessment, student, item) sets `superseded_at` on the one it replaces, so the state as of any
past instant is a plain filter (`received_at < T AND (superseded_at IS NULL OR superseded_at >= T)`)
and past days' summaries can be recomputed identically.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE schools (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            udise           text NOT NULL CHECK (udise ~ '^[0-9]{11}$'),
            name            text NOT NULL,
            district        text NOT NULL,
            block           text NOT NULL,
            created_at      timestamptz NOT NULL DEFAULT now(),
            UNIQUE (organization_id, udise)
        );

        CREATE TABLE classes (
            id          bigserial PRIMARY KEY,
            school_id   bigint NOT NULL REFERENCES schools(id) ON DELETE CASCADE,
            grade       integer NOT NULL CHECK (grade BETWEEN 1 AND 12),
            section     text NOT NULL DEFAULT 'A',
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (school_id, grade, section)
        );

        CREATE TABLE students (
            id           bigserial PRIMARY KEY,
            class_id     bigint NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
            roll_number  text NOT NULL,
            name         text NOT NULL,
            parent_phone text,
            created_at   timestamptz NOT NULL DEFAULT now(),
            updated_at   timestamptz NOT NULL DEFAULT now(),
            deleted_at   timestamptz,          -- left the school; their earlier marks stay in the history
            UNIQUE (class_id, roll_number)
        );

        CREATE TABLE subjects (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            code            text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
            name            text NOT NULL,
            UNIQUE (organization_id, code)
        );

        CREATE TABLE assessments (
            id               bigserial PRIMARY KEY,
            organization_id  bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            title            text NOT NULL,
            subject_id       bigint REFERENCES subjects(id),
            type             text NOT NULL CHECK (type IN ('LO', 'Unit', 'Question', 'None')),
            evaluation       text NOT NULL CHECK (evaluation IN ('Grade', 'Marks')),
            outcome          text NOT NULL CHECK (outcome = 'TSP'),
            submission_level text NOT NULL CHECK (submission_level IN ('student', 'class', 'exam')),
            grade_scale      jsonb NOT NULL DEFAULT '[]',   -- [{grade, min_percent}], best grade first
            pass_criterion   jsonb NOT NULL,                -- {min_percent} for Marks, {min_grade} for Grade
            deadline         timestamptz,
            sheet            jsonb,                         -- {spreadsheet_id} for the Summary tab export
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );

        -- Learning outcomes, units or questions. pass_marks is derived from the pass criterion once, here.
        CREATE TABLE assessment_items (
            id            bigserial PRIMARY KEY,
            assessment_id bigint NOT NULL REFERENCES assessments(id) ON DELETE CASCADE,
            position      integer NOT NULL,
            key           text NOT NULL,
            label         text NOT NULL,
            max_marks     numeric NOT NULL CHECK (max_marks > 0),
            pass_marks    numeric,
            choices       text[],       -- exams: the multiple-choice options
            answer_key    text,         -- exams: the correct option
            UNIQUE (assessment_id, key)
        );

        -- The grade scale, one row per grade: rank 1 is best; passing says whether it meets the criterion.
        CREATE TABLE assessment_grades (
            assessment_id bigint NOT NULL REFERENCES assessments(id) ON DELETE CASCADE,
            grade         text NOT NULL,
            rank          integer NOT NULL,
            min_percent   numeric,
            passing       boolean NOT NULL,
            PRIMARY KEY (assessment_id, grade)
        );

        CREATE TABLE assessment_classes (
            assessment_id bigint NOT NULL REFERENCES assessments(id) ON DELETE CASCADE,
            class_id      bigint NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
            PRIMARY KEY (assessment_id, class_id)
        );
        CREATE INDEX assessment_classes_class ON assessment_classes (class_id);

        -- One row per posted batch (student marks, class results or exam answers), idempotent by submission_id.
        CREATE TABLE assessment_submissions (
            id            bigserial PRIMARY KEY,
            assessment_id bigint NOT NULL REFERENCES assessments(id) ON DELETE CASCADE,
            class_id      bigint NOT NULL REFERENCES classes(id),
            submission_id uuid NOT NULL,
            kind          text NOT NULL CHECK (kind IN ('student', 'class', 'exam')),
            collector_id  text NOT NULL,
            submitted_at  timestamptz NOT NULL,
            received_at   timestamptz NOT NULL DEFAULT now(),
            entry_count   integer NOT NULL,
            content_hash  text NOT NULL,
            UNIQUE (assessment_id, submission_id)
        );
        CREATE INDEX assessment_submissions_class ON assessment_submissions (assessment_id, class_id);

        CREATE TABLE student_marks (
            id            bigserial PRIMARY KEY,
            submission_pk bigint NOT NULL,      -- assessment_submissions.id; no FK, so bulk loads stay fast
            assessment_id bigint NOT NULL,
            class_id      bigint NOT NULL,
            student_id    bigint NOT NULL,
            item_id       bigint NOT NULL,
            is_present    boolean NOT NULL,
            marks         numeric,
            grade         text,
            received_at   timestamptz NOT NULL DEFAULT now(),
            superseded_at timestamptz
        );
        CREATE UNIQUE INDEX student_marks_current ON student_marks (assessment_id, student_id, item_id)
            WHERE superseded_at IS NULL;

        CREATE TABLE class_results (
            id               bigserial PRIMARY KEY,
            submission_pk    bigint NOT NULL,
            assessment_id    bigint NOT NULL,
            class_id         bigint NOT NULL,
            item_id          bigint NOT NULL,
            students_present integer NOT NULL,
            students_cleared integer NOT NULL,
            received_at      timestamptz NOT NULL DEFAULT now(),
            superseded_at    timestamptz
        );
        CREATE UNIQUE INDEX class_results_current ON class_results (assessment_id, class_id, item_id)
            WHERE superseded_at IS NULL;

        -- Exam answers as they come (append only, batch insert); graded by the aggregate_assessments DAG.
        CREATE TABLE exam_answers (
            id            bigserial PRIMARY KEY,
            submission_pk bigint NOT NULL,
            assessment_id bigint NOT NULL,
            class_id      bigint NOT NULL,
            student_id    bigint NOT NULL,
            item_id       bigint NOT NULL,
            answer        text NOT NULL,
            received_at   timestamptz NOT NULL DEFAULT now(),
            graded_key    text,      -- the answer key the marks were computed against
            marks         numeric
        );
        CREATE INDEX exam_answers_latest ON exam_answers (assessment_id, student_id, item_id, received_at DESC, id DESC);
        CREATE INDEX exam_answers_received ON exam_answers (received_at);

        -- Daily summaries, one row per (day, assessment, level, entity, item); a day is replaced as a whole.
        CREATE TABLE assessment_summaries (
            summary_date       date NOT NULL,
            assessment_id      bigint NOT NULL,
            level              text NOT NULL CHECK (level IN ('class', 'school', 'block', 'district')),
            entity             text NOT NULL,   -- class id, school UDISE, 'district/block' or district
            item_id            bigint NOT NULL,
            district           text NOT NULL,
            block              text,
            school_id          bigint,
            class_id           bigint,
            students_assessed  integer NOT NULL,
            students_present   integer NOT NULL,
            students_passing   integer NOT NULL,
            mean_marks         numeric,
            median_marks       numeric,
            grade_distribution jsonb NOT NULL DEFAULT '{}',
            PRIMARY KEY (summary_date, assessment_id, level, entity, item_id)
        );
        CREATE INDEX assessment_summaries_read ON assessment_summaries (assessment_id, level, summary_date);

        -- What each interval's run did, in numbers (kept apart so the summaries stay byte-identical on rerun).
        CREATE TABLE assessment_summary_runs (
            summary_date   date PRIMARY KEY,
            interval_start timestamptz NOT NULL,
            interval_end   timestamptz NOT NULL,
            rows_written   integer NOT NULL,
            computed_at    timestamptz NOT NULL DEFAULT clock_timestamp()
        );

        -- Data that must never be counted: what the API rejects, when it slipped in by another path.
        CREATE VIEW assessment_anomalies AS
        SELECT 'marks_above_max' AS kind, m.assessment_id, m.class_id, m.id AS row_id, m.received_at
          FROM student_marks m JOIN assessment_items i ON i.id = m.item_id
         WHERE m.marks > i.max_marks OR m.marks < 0
        UNION ALL
        SELECT 'marks_for_deleted_student', m.assessment_id, m.class_id, m.id, m.received_at
          FROM student_marks m JOIN students s ON s.id = m.student_id
         WHERE s.deleted_at IS NOT NULL AND m.received_at >= s.deleted_at
        UNION ALL
        SELECT 'student_of_another_class', m.assessment_id, m.class_id, m.id, m.received_at
          FROM student_marks m JOIN students s ON s.id = m.student_id
         WHERE s.class_id <> m.class_id
        UNION ALL
        SELECT 'cleared_above_present', r.assessment_id, r.class_id, r.id, r.received_at
          FROM class_results r
         WHERE r.students_cleared > r.students_present OR r.students_cleared < 0
        UNION ALL
        SELECT 'answer_to_unknown_question', a.assessment_id, a.class_id, a.id, a.received_at
          FROM exam_answers a LEFT JOIN assessment_items i ON i.id = a.item_id AND i.assessment_id = a.assessment_id
         WHERE i.id IS NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        """DROP VIEW assessment_anomalies;
           DROP TABLE assessment_summary_runs, assessment_summaries, exam_answers, class_results, student_marks,
                      assessment_submissions, assessment_classes, assessment_grades, assessment_items, assessments,
                      subjects, students, classes, schools"""
    )

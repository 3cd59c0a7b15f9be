"""Results per student: exams that close, answers students post themselves, student sign-ins, the Results tab.

- `assessments.closed_at`: an exam closed to new answers (and graded at that moment); `results_changed_at` and
  `results_exported_at`: the Results tab's intent (written again when the first is later than the second).
- `exam_answers.answer_id`: the id a student's phone gives each answer, so a retried post is stored once.
  Such answers belong to no teacher's batch (`submission_pk` NULL).
- `student_signins`: a student's sign-in PIN (a scrypt hash only) and its lockout after repeated failures.

Revision ID: 0018_student_results
Revises: 0017_form_tasks
"""

from alembic import op

revision = "0018_student_results"
down_revision = "0017_form_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE assessments ADD COLUMN closed_at timestamptz,
                                ADD COLUMN results_changed_at timestamptz,
                                ADD COLUMN results_exported_at timestamptz;

        ALTER TABLE exam_answers ALTER COLUMN submission_pk DROP NOT NULL,
                                 ADD COLUMN answer_id uuid;
        CREATE UNIQUE INDEX exam_answers_answer_id ON exam_answers (assessment_id, student_id, answer_id)
            WHERE answer_id IS NOT NULL;

        CREATE TABLE student_signins (
            student_id        bigint PRIMARY KEY REFERENCES students(id) ON DELETE CASCADE,
            pin_hash          text NOT NULL,          -- scrypt$<n>$<salt hex>$<hash hex>
            issued_at         timestamptz NOT NULL DEFAULT now(),
            expires_at        timestamptz NOT NULL,
            failed_attempts   integer NOT NULL DEFAULT 0,
            locked_until      timestamptz,
            last_signed_in_at timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """DROP TABLE student_signins;
           DELETE FROM exam_answers WHERE submission_pk IS NULL;
           DROP INDEX exam_answers_answer_id;
           ALTER TABLE exam_answers DROP COLUMN answer_id, ALTER COLUMN submission_pk SET NOT NULL;
           ALTER TABLE assessments DROP COLUMN closed_at, DROP COLUMN results_changed_at,
                                   DROP COLUMN results_exported_at"""
    )

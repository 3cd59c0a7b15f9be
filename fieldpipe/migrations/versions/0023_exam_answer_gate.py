"""Exams: whether an exam takes answers is decided inside the statement that stores a student's answer.

`exam_accepts_answers(exam)` takes the exam's advisory lock shared (the lock a close takes exclusively, key
`hashtextextended('exam:' || id, 0)`, as fieldpipe/assessments/exams.py takes it), then reads the exam's
state in a query of its own. A VOLATILE function's queries each take a fresh snapshot (READ COMMITTED), so
that read happens after the lock is granted: a close committed while the answer waited is seen, and a close
that starts later waits for the answer's transaction. So one INSERT per answer, committed on its own, keeps
the rule that every answer is either graded by the close or refused.

Revision ID: 0023_exam_answer_gate
Revises: 0022_rules_tasks
"""

from alembic import op

revision = "0023_exam_answer_gate"
down_revision = "0022_rules_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION exam_accepts_answers(exam bigint) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            PERFORM pg_advisory_xact_lock_shared(hashtextextended('exam:' || exam, 0));
            RETURN EXISTS (SELECT 1 FROM assessments
                            WHERE id = exam AND submission_level = 'exam' AND closed_at IS NULL
                              AND (deadline IS NULL OR deadline > now()));
        END
        $$;
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION exam_accepts_answers(bigint)")

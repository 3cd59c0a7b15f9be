"""Students: a one-time sign-in code beside each PIN, printed on the slip as a QR code.

`student_signins.code_hash`: the SHA-256 of the code (128 random bits, so a fast hash is enough and the code
is found through its hash); `code_used_at`: when it was exchanged for a token (it works once).

Revision ID: 0024_student_signin_codes
Revises: 0023_exam_answer_gate
"""

from alembic import op

revision = "0024_student_signin_codes"
down_revision = "0023_exam_answer_gate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE student_signins ADD COLUMN code_hash text, ADD COLUMN code_used_at timestamptz;
        CREATE UNIQUE INDEX student_signins_code ON student_signins (code_hash) WHERE code_hash IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP INDEX student_signins_code; ALTER TABLE student_signins DROP COLUMN code_hash, DROP COLUMN code_used_at")

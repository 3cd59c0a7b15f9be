"""A form's business rules become its `rules` task (issue 16): every form with rules in force gets an enabled
`rules` task whose configuration is the document in force. The versions stay where they are.

Revision ID: 0022_rules_tasks
Revises: 0021_operations
"""

from alembic import op

revision = "0022_rules_tasks"
down_revision = "0021_operations"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO form_tasks (organization_id, form_id, kind, mode, config)
        SELECT f.organization_id, f.id, 'rules', 'sync', rv.document
          FROM forms f JOIN rules_versions rv ON rv.form_id = f.id AND rv.version = f.rules_version
         WHERE NOT EXISTS (SELECT 1 FROM form_tasks t WHERE t.form_id = f.id AND t.kind = 'rules')
         ORDER BY f.id;
        """
    )


def downgrade() -> None:
    # Before tasks, rules could not be switched off: a form whose rules task was disabled keeps no rules in force.
    op.execute(
        """
        UPDATE forms f SET rules_version = NULL
          FROM form_tasks t WHERE t.form_id = f.id AND t.kind = 'rules' AND NOT t.enabled;
        DELETE FROM form_tasks WHERE kind = 'rules';
        """
    )

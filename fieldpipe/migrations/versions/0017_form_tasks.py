"""Post-submission tasks per form (issue 16): the task list, the ledger of runs, replays; the form settings
`sms_receipt` and `sheet` move into tasks, and a webhook may belong to one form's task.

Revision ID: 0017_form_tasks
Revises: 0016_pipeline_events
"""

from alembic import op

revision = "0017_form_tasks"
down_revision = "0016_pipeline_events"
branch_labels = None
depends_on = None

# What used to be a form setting and the task kind it becomes.
SETTINGS_KINDS = (("sms_receipt", "sms_receipt"), ("sheet", "sheet_export"))


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE form_tasks (
            id              bigserial PRIMARY KEY,
            organization_id bigint NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
            form_id         bigint NOT NULL REFERENCES forms(id) ON DELETE CASCADE,
            kind            text NOT NULL,
            mode            text NOT NULL CHECK (mode IN ('sync', 'async')),
            config          jsonb NOT NULL DEFAULT '{}',
            -- the response events the task runs on (response.created, response.updated), from its kind and config
            events          text[] NOT NULL DEFAULT '{}',
            enabled         boolean NOT NULL DEFAULT true,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX form_tasks_form ON form_tasks (form_id, id);

        -- The ledger: one row per (task, response revision), done exactly once; also the async tasks' outbox.
        CREATE TABLE task_runs (
            id              bigserial PRIMARY KEY,
            task_id         bigint NOT NULL REFERENCES form_tasks(id) ON DELETE CASCADE,
            response_id     bigint NOT NULL REFERENCES responses(id) ON DELETE CASCADE,
            revision        integer NOT NULL,
            kind            text NOT NULL,
            status          text NOT NULL DEFAULT 'queued'
                            CHECK (status IN ('queued', 'sending', 'done', 'failed', 'skipped')),
            attempts        integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL DEFAULT now(),
            lease_until     timestamptz,    -- a 'sending' row whose lease passed was abandoned by its worker
            last_error      text,
            outcome         jsonb,
            replay_id       bigint,
            created_at      timestamptz NOT NULL DEFAULT now(),
            updated_at      timestamptz NOT NULL DEFAULT now(),
            finished_at     timestamptz,
            UNIQUE (task_id, response_id, revision)
        );
        CREATE INDEX task_runs_due ON task_runs (kind, next_attempt_at) WHERE status IN ('queued', 'sending');
        CREATE INDEX task_runs_listing ON task_runs (task_id, id);

        CREATE TABLE task_replays (
            id            bigserial PRIMARY KEY,
            task_id       bigint NOT NULL REFERENCES form_tasks(id) ON DELETE CASCADE,
            received_from timestamptz NOT NULL,
            received_to   timestamptz NOT NULL,
            -- running once its runs are queued; done (as answered) when none of them is left to run
            status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running')),
            total         integer,
            queued        integer,
            created_at    timestamptz NOT NULL DEFAULT now(),
            started_at    timestamptz
        );
        CREATE INDEX task_replays_pending ON task_replays (id) WHERE status = 'pending';

        -- A webhook task's endpoint is a webhook (signing, circuit breaker, deliveries) scoped to one form.
        ALTER TABLE webhooks ADD COLUMN task_id bigint REFERENCES form_tasks(id) ON DELETE CASCADE;
        ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
        ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (cardinality(events) > 0 AND events <@
            ARRAY['flag.opened', 'flag.resolved', 'response.created', 'response.updated']);
        """
    )
    for setting, kind in SETTINGS_KINDS:
        events = "{response.created}" if kind == "sms_receipt" else "{response.created,response.updated}"
        op.execute(
            f"""
            INSERT INTO form_tasks (organization_id, form_id, kind, mode, config, events)
            SELECT organization_id, id, '{kind}', 'async', settings -> '{setting}', '{events}'
              FROM forms WHERE jsonb_typeof(settings -> '{setting}') = 'object' ORDER BY id;
            UPDATE forms SET settings = settings - '{setting}' WHERE settings ? '{setting}';
            """
        )


def downgrade() -> None:
    for setting, kind in SETTINGS_KINDS:
        op.execute(
            f"""
            UPDATE forms f SET settings = f.settings || jsonb_build_object('{setting}', t.config)
              FROM (SELECT DISTINCT ON (form_id) form_id, config FROM form_tasks
                     WHERE kind = '{kind}' ORDER BY form_id, id) t
             WHERE t.form_id = f.id;
            """
        )
    op.execute(
        """
        DELETE FROM webhooks WHERE task_id IS NOT NULL;
        ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
        ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check
            CHECK (cardinality(events) > 0 AND events <@ ARRAY['flag.opened', 'flag.resolved']);
        ALTER TABLE webhooks DROP COLUMN task_id;
        DROP TABLE task_replays, task_runs, form_tasks;
        """
    )

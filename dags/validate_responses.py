"""Validate new and edited responses against each form's business rules and write flags.

- **Reads** (connection `fieldpipe_db`): `responses` received or edited since each form's watermark in
  `validation_watermarks` (all of a form's responses when its rules version changed), `forms`, and each
  form's rules version in force from `rules_versions` (set through the API or `fieldpipe rules push`;
  see docs/rules.md).
- **Writes**: `flags` (one per response revision and broken rule, recording the rules version that raised
  it; reruns upsert, fixed or superseded revisions close theirs, flags of rules no longer in force close
  as `rule_removed`) and the watermark, in one transaction per form. Publishes the asset
  `fieldpipe.flags`, which `flag_callbacks` is scheduled on.
- **How**: `plan_groups` lists the form slugs with work to do and bin-packs them by pending responses into
  at most 8 groups (`FIELDPIPE_PIPELINE_MAX_GROUPS`; small work shares one group); one mapped
  `validate_group` task per group (never per form or response) validates its forms one after another,
  each evaluating every expression rule in one SQL statement over its batch and running the column
  expectations with GX Core over it as a DataFrame. The task log has one numbered line per form.
- **Schedule**: within seconds of new or edited responses or a new rules version (the `fieldpipe.responses`
  asset, which the database's events update through the triggerer; a burst makes one or two runs), and
  every 3 minutes as a safety net. One run at a time; a failed run leaves its watermark, so the next run
  picks its responses up.
- **Failures**: rules that no longer fit their form's questions fail only that form, naming the form,
  the rule id and the problem; a rule that fails in PostgreSQL at run time is reported as broken. Either
  way the form is recorded in `pipeline_failures` (`GET /api/v1/pipeline-failures`), the other forms of
  its group and of the run are validated, and the group's task fails at the end (no retries) naming each
  failed form. Save fixed rules (a new version); the next run revalidates the form.
- **Rerun / backfill**: trigger the DAG; there is nothing to backfill. To revalidate everything, save a
  new rules version or delete the form's row in `validation_watermarks`.
- **Deadline**: a run not finished 15 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task

from fieldpipe.pipelines.assets import FLAGS, RESPONSES
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert


@dag(
    doc_md=__doc__,
    schedule=AssetOrTimeSchedule(timetable=CronTriggerTimetable("*/3 * * * *", timezone="UTC"),
                                 assets=[RESPONSES]),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    deadline=deadline_alert(timedelta(minutes=15)),
    tags=["validation", "flags"],
    default_args=DEFAULT_ARGS,
)
def validate_responses():
    @task
    def plan_groups() -> list[dict]:
        from fieldpipe.pipelines import groups
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.rules.validate import pending_work

        with app_database() as conn:
            units = pending_work(conn)
        planned = groups.plan(units)
        print(f"{len(units)} form slug(s) to validate in {len(planned)} group(s): "
              + ("; ".join(group["label"] for group in planned) or "none"))
        return planned

    @task(outlets=[FLAGS], map_index_template="{{ group_label }}")
    def validate_group(group: dict) -> dict:
        from airflow.sdk import get_current_context

        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.rules.validate import validate_group as validate

        get_current_context()["group_label"] = group["label"]  # names the mapped task instance in the UI
        with app_database() as conn:
            return validate(conn, group)

    validate_group.expand(group=plan_groups())


validate_responses()

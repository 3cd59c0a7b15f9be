"""Validate new and edited responses against each form's business rules and write flags.

- **Reads** (connection `fieldpipe_db`): `responses` received or edited since each form's watermark in
  `validation_watermarks` (all of a form's responses when its rules version changed), `forms`, and each
  form's rules version in force from `rules_versions` (set through the API or `fieldpipe rules push`;
  see docs/rules.md).
- **Writes**: `flags` (one per response revision and broken rule, recording the rules version that raised
  it; reruns upsert, fixed or superseded revisions close theirs, flags of rules no longer in force close
  as `rule_removed`) and the watermark, in one transaction per form. Publishes the asset
  `fieldpipe.flags`, which `flag_callbacks` is scheduled on.
- **How**: `affected_forms` lists the form slugs with work to do; one mapped `validate_form` task per slug
  (never per response) evaluates every expression rule in one SQL statement over the batch and runs
  the column expectations with GX Core over it as a DataFrame.
- **Schedule**: every 3 minutes, one run at a time; a failed run leaves its watermark, so the next run
  picks its responses up.
- **Failures**: rules that no longer fit their form's questions fail only that form, at once (no
  retries), naming the form, the rule id and the problem; a rule that fails in PostgreSQL at run time is
  reported as broken (the task fails after the other forms and rules were validated, naming the form and
  rule). Save fixed rules (a new version); the next run revalidates the form.
- **Rerun / backfill**: trigger the DAG; there is nothing to backfill. To revalidate everything, save a
  new rules version or delete the form's row in `validation_watermarks`.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fieldpipe.pipelines.assets import FLAGS
from fieldpipe.pipelines.defaults import DEFAULT_ARGS, failing_at_once_on

FAIL_AT_ONCE = failing_at_once_on("fieldpipe.rules.validate.ValidationFailed",
                                  "broken rules need a person to fix them")


@dag(
    doc_md=__doc__,
    schedule="*/3 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=30),
    tags=["validation", "flags"],
    default_args=DEFAULT_ARGS,
)
def validate_responses():
    @task
    def affected_forms() -> list[str]:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.rules.validate import affected_slugs

        with app_database() as conn:
            slugs = affected_slugs(conn)
        print(f"{len(slugs)} form slug(s) to validate: {', '.join(slugs) or 'none'}")
        return slugs

    @task(outlets=[FLAGS], retry_policy=FAIL_AT_ONCE, map_index_template="{{ form_slug }}")
    def validate_form(form_slug: str) -> list[str]:
        from airflow.sdk import get_current_context

        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.rules.validate import validate_slug

        get_current_context()["form_slug"] = form_slug  # names the mapped task instance in the UI
        with app_database() as conn:
            results = validate_slug(conn, form_slug)
        for result in results:
            print(result.summary())
        return [result.summary() for result in results]

    validate_form.expand(form_slug=affected_forms())


validate_responses()

"""
# export_results

The `Results` tab of each assessment's sheet (one row per student: a column per item, then total,
percentage, grade, passed), written within a minute of a change rather than at the next daily run.

- **Reads** (connection `fieldpipe_db`): assessments that name a sheet (`sheet.spreadsheet_id`) whose
  results changed since their tab was last written: an exam closed (`POST /api/v1/assessments/{id}/close`)
  or its answer key corrected (`assessments.results_changed_at`), or new marks received
  (`assessment_submissions`). Open exams are left out: their answers are graded when they close.
- **Writes**: the `Results` tab, replaced as a whole, as of the moment it is written, through the Sheets
  export's `write_table` (connection `google_sheets`; without it, `var/exports/assessment-<id>.xlsx`), in
  the pool `sheets_api`; then `assessments.results_exported_at`, one assessment at a time, so one failing
  sheet leaves the others written and is tried again next minute.
- **Schedule**: every minute; one run at a time. `aggregate_assessments` also writes the tab daily, as of
  the end of its data interval.
- **Rerun / backfill**: a run writes what changed, whatever its interval; rerunning rewrites the same tabs.
  To rewrite a past day's tab as of that day, rerun that day's `aggregate_assessments`.
- **Deadline**: a run not finished 5 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import CronTriggerTimetable, dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert
from fieldpipe.pipelines.names import SHEETS_POOL


@dag(
    doc_md=__doc__,
    schedule=CronTriggerTimetable("* * * * *", timezone="UTC"),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=10),
    deadline=deadline_alert(timedelta(minutes=5)),
    tags=["assessments", "sheets"],
    default_args=DEFAULT_ARGS,
)
def export_results():
    @task(pool=SHEETS_POOL, execution_timeout=timedelta(minutes=5))
    def write_changed_results_tabs() -> dict:
        from fieldpipe.assessments.export import export_changed_results
        from fieldpipe.pipelines.connections import app_database, google_sheets

        with app_database() as conn:
            written = export_changed_results(conn, google_sheets())
        return {str(k): v for k, v in written.items()}

    write_changed_results_tabs()


export_results()

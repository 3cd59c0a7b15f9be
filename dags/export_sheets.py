"""Export each form's responses to its Google Sheet (or local workbook): one row per response, kept current.

- **Reads**: `forms` with an enabled `sheet_export` task (`{spreadsheet_id, worksheet}`; docs/tasks.md), their
  `responses`, open `flags`, and the export state `sheet_exports` / `sheet_rows`; the sheet's header and id
  column through the Sheets API.
- **Writes**: the sheet (header, new rows appended in large chunks, edited rows in place) through the Airflow
  connection `google_sheets`; without a Google key (`make up`) the workbook `var/exports/<form>.xlsx`.
  Records the row map and watermark in `sheet_exports` / `sheet_rows`.
- **Schedule**: every 5 minutes, one run at a time. `plan_groups` bin-packs the forms by pending responses
  into at most 8 groups (`FIELDPIPE_PIPELINE_MAX_GROUPS`); one mapped `export_group` task per group
  exports its forms one after another, with a numbered log line per form; never a task per form or per
  response. All exports share the pool `sheets_api` and the Sheets rate limiter held in PostgreSQL, and
  retry 429/5xx with backoff.
- **With `run_tasks`**: that DAG exports a form as soon as its new responses' runs come due; this one keeps
  every sheet current on a schedule as well (edits, open flag counts, layout changes).
- **Rerun / backfill**: a run exports whatever is missing or out of date, so just trigger the DAG again;
  there is nothing to backfill. A form whose sheet was edited by hand beyond repair is recorded in
  `pipeline_failures` with the reason (e.g. a renamed column), the other forms are exported, and the
  group's task fails at the end without retries; fix the sheet and rerun. See docs/sheets.md.
- **Deadline**: a run not finished 30 minutes after it was queued notifies the operators
  (a deadline alert, docs/operations.md).
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS, deadline_alert
from fieldpipe.pipelines.names import SHEETS_POOL


@dag(
    doc_md=__doc__,
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=60),
    deadline=deadline_alert(timedelta(minutes=30)),
    tags=["export", "sheets"],
    default_args=DEFAULT_ARGS,
)
def export_sheets():
    @task
    def plan_groups() -> list[dict]:
        from fieldpipe.pipelines import groups
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.sheets.jobs import pending_exports

        with app_database() as conn:
            units = pending_exports(conn)
        planned = groups.plan(units)
        print(f"{len(units)} form(s) export to a sheet, in {len(planned)} group(s): "
              + ("; ".join(group["label"] for group in planned) or "none"))
        return planned

    @task(pool=SHEETS_POOL, map_index_template="{{ group_label }}")
    def export_group(group: dict) -> dict:
        from airflow.sdk import get_current_context

        from fieldpipe.pipelines import groups
        from fieldpipe.pipelines.connections import app_database, google_sheets
        from fieldpipe.sheets.jobs import PIPELINE, export_form_sheet

        get_current_context()["group_label"] = group["label"]  # names the mapped task instance in the UI
        sheets = google_sheets()
        with app_database() as conn:
            conn.autocommit = True  # the export commits its row map as it goes
            return groups.run_group(PIPELINE, group, lambda unit: export_form_sheet(conn, unit["key"], sheets)["summary"])

    export_group.expand(group=plan_groups())


export_sheets()

"""Export each form's responses to its Google Sheet (or local workbook): one row per response, kept current.

- **Reads**: `forms` whose settings name a sheet (`settings.sheet = {spreadsheet_id, worksheet}`), their
  `responses`, open `flags`, and the export state `sheet_exports` / `sheet_rows`; the sheet's header and id
  column through the Sheets API.
- **Writes**: the sheet (header, new rows appended in large chunks, edited rows in place) through the Airflow
  connection `google_sheets`; without a Google key (`make up`) the workbook `var/exports/<form>.xlsx`.
  Records the row map and watermark in `sheet_exports` / `sheet_rows`.
- **Schedule**: every 5 minutes, one run at a time; one mapped task per form, never per response. All
  exports share the pool `sheets_api` and a client-side limiter, and retry 429/5xx with backoff.
- **Rerun / backfill**: a run exports whatever is missing or out of date, so just trigger the DAG again;
  there is nothing to backfill. A form whose sheet was edited by hand beyond repair fails its task with
  the reason (e.g. a renamed column) and no retries; fix the sheet and rerun. See docs/sheets.md.
"""

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS, failing_at_once_on
from fieldpipe.pipelines.names import SHEETS_POOL

FAIL_AT_ONCE = failing_at_once_on("fieldpipe.sheets.export.ExportBlocked",
                                  "the sheet was edited by hand in a way only a person can fix")


@dag(
    doc_md=__doc__,
    schedule="*/5 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    dagrun_timeout=timedelta(minutes=60),
    tags=["export", "sheets"],
    default_args=DEFAULT_ARGS,
)
def export_sheets():
    @task
    def forms_to_export() -> list[dict]:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.sheets.jobs import forms_with_sheets

        with app_database() as conn:
            forms = forms_with_sheets(conn)
        print(f"{len(forms)} form(s) export to a sheet")
        return forms

    @task(pool=SHEETS_POOL, retry_policy=FAIL_AT_ONCE, map_index_template="{{ form_slug }}")
    def export_form(form: dict) -> dict:
        from airflow.sdk import get_current_context

        from fieldpipe.pipelines.connections import app_database, google_sheets
        from fieldpipe.sheets.jobs import export_form_sheet

        get_current_context()["form_slug"] = form["slug"]  # names the mapped task instance in the UI
        with app_database() as conn:
            conn.autocommit = True  # the export commits its row map as it goes
            report = export_form_sheet(conn, form["form_id"], google_sheets())
        print(report["summary"])
        return report

    export_form.expand(form=forms_to_export())


export_sheets()

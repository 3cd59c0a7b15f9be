"""Archive each form's responses as daily Parquet partitions in object storage, masked, and keep the
`reporting` schema's views in step with the forms.

- **Reads**: `responses` received on the interval's UTC day, and earlier days' responses edited that day,
  at their latest revision; masked exactly as the `reporting` views (fieldpipe/reporting/columns.py); each
  form's `archive` task (`form_tasks`): a disabled one leaves the form out, its `exclude` leaves questions out.
- **Writes**: `s3://<bucket>/<org>/<form>/dt=YYYY-MM-DD/part.parquet` through the Airflow connection
  `aws_default` (moto's S3 under `make up`), one file per form and day, replaced whole; the per-form views
  in the `reporting` schema, rebuilt.
- **Schedule**: daily, for the day just ended (UTC). Catch-up is off (a new installation archives
  yesterday, not every day since the start date): archive older days with a backfill.
- **Rerun / backfill**: rewriting a partition is idempotent and byte-identical when nothing changed:
  `airflow backfill create --dag-id archive_responses --from-date D1 --to-date D2`. A form that cannot be
  archived is named in the task log and fails the task after every other form's partition has landed;
  the retry rewrites them all (cheap, identical).
"""

import pendulum
from airflow.sdk import CronDataIntervalTimetable, dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS


@dag(
    doc_md=__doc__,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["reporting", "archive"],
    default_args=DEFAULT_ARGS,
)
def archive_responses():
    @task
    def refresh_views() -> int:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.reporting.views import refresh_all

        with app_database() as conn:
            names = refresh_all(conn)
            conn.commit()
        print(f"reporting views: {len(names)} rebuilt")
        return len(names)

    @task
    def archive_day(data_interval_start=None) -> dict:
        from fieldpipe.objectstore import default_store
        from fieldpipe.pipelines.connections import app_database_url
        from fieldpipe.reporting.archive import archive_day as archive

        report = archive(app_database_url(), default_store(), data_interval_start.date())
        print(report.summary())
        if report.failed:
            raise RuntimeError(f"{len(report.failed)} form(s) could not be archived: "
                               + ", ".join(f"{name} ({error})" for name, error in sorted(report.failed.items())))
        return {"partitions": len(report.written), "rows": report.rows}

    refresh_views() >> archive_day()


archive_responses()

"""Import responses from CSV and XLSX files waiting in object storage (dropped there, or uploaded through the API).

- **Schedule**: continuous, one run at a time. Each run starts with a deferrable `S3KeySensor`
  (connection `aws_default`, bucket `FIELDPIPE_BUCKET`) waiting for any key under `<org>/<form>/incoming/`
  in the triggerer, holding no worker slot; after an hour without files the run ends and the next waits.
- **Reads**: each waiting file, copied to a local temporary file and read in chunks of 5,000 rows
  (CSV in UTF-8, comma or semicolon; XLSX, first sheet).
- **Writes** (connection `fieldpipe_db`): responses through the same validation and set-based insert as
  the API (receipts queued unless the form's `settings.imports.receipts` is false); per import its status,
  counts and invalid rows in `imports`/`import_errors`; then `<file>.report.json` next to the file, which
  moves to `<org>/<form>/processed/` (or `failed/` when the whole file was refused).
- **Progress**: the task log has a line per committed chunk; `GET /api/v1/forms/{slug}/imports/{id}`
  shows the counts so far.
- **Failures**: a refused file (unknown form, not CSV/XLSX, wrong encoding, unknown or missing column) is
  reported and moved to `failed/`; the other files proceed. A run that breaks off (crash, database down)
  resumes each import after its last committed chunk; an import whose runs keep breaking is failed
  after 5 attempts.
- **Rerun / backfill**: nothing to backfill; to import a file again, drop or upload it again. A rerun is
  always safe: a row's submission id is fixed by the file, so nothing is created twice.
"""

from datetime import timedelta

import pendulum
from airflow.providers.amazon.aws.sensors.s3 import S3KeySensor
from airflow.sdk import dag, task

from fieldpipe.config import Settings
from fieldpipe.imports import INCOMING_KEY_PATTERN
from fieldpipe.pipelines.defaults import DEFAULT_ARGS
from fieldpipe.pipelines.names import AWS_CONN



@dag(
    doc_md=__doc__,
    schedule="@continuous",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["imports"],
    default_args=DEFAULT_ARGS,
)
def import_responses():
    wait_for_files = S3KeySensor(
        task_id="wait_for_files", bucket_name=Settings.from_env().bucket, aws_conn_id=AWS_CONN,
        bucket_key=f"{INCOMING_KEY_PATTERN}$", use_regex=True, deferrable=True, poke_interval=10,
        # After an hour without files the run ends (skipped) and the next continuous run waits afresh.
        timeout=timedelta(hours=1).total_seconds(), soft_fail=True,
    )

    @task(execution_timeout=timedelta(hours=12))
    def import_files() -> dict:
        import logging

        from fieldpipe.imports.jobs import claim_incoming, run_import
        from fieldpipe.objectstore import default_store
        from fieldpipe.pipelines.connections import app_database

        log = logging.getLogger("fieldpipe.imports")
        store = default_store()
        outcome = {"done": 0, "failed": 0, "broken_off": 0}
        with app_database() as conn:
            for import_id in claim_incoming(conn, store):
                try:
                    report = run_import(conn, store, import_id)
                except Exception as err:  # this file breaks off and resumes next run; the others still go
                    # The class only: a database error's message may quote a submitted value.
                    log.error("import %s broke off: %s", import_id, type(err).__name__)
                    outcome["broken_off"] += 1
                    continue
                if report is not None:
                    outcome[report["status"]] += 1
        print(f"imports: {outcome['done']} done, {outcome['failed']} refused, {outcome['broken_off']} broke off")
        if outcome["broken_off"]:
            raise RuntimeError(f"{outcome['broken_off']} import(s) broke off; they resume from their last chunk")
        return outcome

    wait_for_files >> import_files()


import_responses()

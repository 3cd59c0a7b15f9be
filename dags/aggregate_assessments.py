"""
# aggregate_assessments

Daily school assessment summaries: for each assessment × item, the students assessed, present and passing
(TSP), mean and median marks and the grade distribution, per class, school, block and district.

- **Reads** (connection `fieldpipe_db`): `student_marks`, `class_results`, `exam_answers`, the rosters and
  assessment definitions; only rows received before the end of the data interval.
- **Writes**: grades exam answers (`exam_answers.marks`) against their answer keys; replaces the interval's
  rows of `assessment_summaries` as a whole (delete + insert in one transaction) and records the run in
  `assessment_summary_runs`. SQL: `include/sql/assessments/`, parameterised by the data interval.
  Then writes the day's summaries to the `Summary` tab of each assessment's sheet (`sheet.spreadsheet_id`)
  through the Sheets export's `write_table` (connection `google_sheets`; without it,
  `var/exports/assessment-<id>.xlsx`), in the pool `sheets_api`. The tab is replaced as a whole. Likewise
  the `Results` tab (one row per student, as of the end of the interval; `export_results` also writes it
  within a minute of a change).
- **Checks**: data that the API would have rejected but came in by another path (marks above the maximum,
  marks for a deleted student or one of another class, cleared above present, answers to questions not in
  the exam) is left out of the summaries, listed in the log by `report_anomalies`, and fails
  `check_no_anomalies` (common-sql table check) for the interval it arrived in; `check_summary_rows` checks
  the written summaries (every school, block and district counts exactly the students of its classes). It is
  never counted silently.
- **Schedule**: daily data intervals, `CronDataIntervalTimetable("@daily", timezone="UTC")` (not
  `schedule="@daily"`, whose interval has zero length in Airflow 3), with catchup from
  `FIELDPIPE_ASSESSMENTS_START_DATE` (environment, YYYY-MM-DD, default 2026-11-01).
- **Manual runs**: a run triggered without a logical date (so without a data interval) summarises the
  day of the trigger so far; the scheduled run for that day later replaces it with the whole day.
- **Rerun / backfill**: every interval's summaries are computed only from data received before the
  interval's end and replace that day's rows, so clearing a run, rerunning it or backfilling gives
  identical tables:
  `airflow backfill create --dag-id aggregate_assessments --from-date 2026-11-01 --to-date 2026-11-30
  --reprocess-behavior completed`. Runs go one at a time (`max_active_runs=1`): each reads every mark once.
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from pathlib import Path

from airflow.providers.common.sql.operators.sql import (
    SQLExecuteQueryOperator, SQLTableCheckOperator,
)
from airflow.sdk import CronDataIntervalTimetable, dag, task

from fieldpipe.assessments.aggregate import summary_checks
from fieldpipe.config import Settings
from fieldpipe.pipelines.assets import ASSESSMENT_SUMMARIES
from fieldpipe.pipelines.defaults import DEFAULT_ARGS
from fieldpipe.pipelines.names import APP_DB_CONN, SHEETS_POOL

SQL_DIR = Path(__file__).resolve().parent.parent / "include" / "sql"
START_DATE = datetime.combine(Settings.from_env().assessments_start_date, time(), tzinfo=timezone.utc)
INTERVAL = "received_at >= '{{ day_start(data_interval_start | default(none), dag_run) }}' AND received_at < '{{ day_end(data_interval_end | default(none), dag_run) }}'"
SUMMARY_DAY = "summary_date = '{{ day_start(data_interval_start | default(none), dag_run).strftime(\"%Y-%m-%d\") }}'"


def day_start(data_interval_start, dag_run):
    """The interval's start, or for a manual run without one, midnight UTC of the day it was triggered."""
    if data_interval_start is not None:
        return data_interval_start
    return dag_run.run_after.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def day_end(data_interval_end, dag_run):
    """The interval's end, or for a manual run without one, the moment it was triggered."""
    return data_interval_end if data_interval_end is not None else dag_run.run_after


@dag(
    dag_id="aggregate_assessments",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=START_DATE,
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    template_searchpath=[str(SQL_DIR)],
    user_defined_macros={"day_start": day_start, "day_end": day_end},
    tags=["assessments", "summaries"],
    doc_md=__doc__,
)
def aggregate_assessments():
    @task
    def grade_exam_answers(data_interval_end=None, dag_run=None) -> int:
        from fieldpipe.assessments.aggregate import grade_exam_answers as grade
        from fieldpipe.pipelines.connections import app_database

        with app_database() as conn:
            return grade(conn, day_end(data_interval_end, dag_run))

    @task(outlets=[ASSESSMENT_SUMMARIES])
    def summarize(data_interval_start=None, data_interval_end=None, dag_run=None) -> dict:
        from fieldpipe.assessments.aggregate import summarize_interval
        from fieldpipe.pipelines.connections import app_database

        with app_database() as conn:
            return summarize_interval(conn, day_start(data_interval_start, dag_run), day_end(data_interval_end, dag_run))

    @task(pool=SHEETS_POOL)
    def export_summary_tabs(data_interval_start=None, dag_run=None) -> dict:
        from fieldpipe.assessments.export import export_summaries
        from fieldpipe.pipelines.connections import app_database, google_sheets

        with app_database() as conn:
            written = export_summaries(conn, day_start(data_interval_start, dag_run).date(), google_sheets())
        return {str(k): v for k, v in written.items()}

    @task(pool=SHEETS_POOL)
    def export_results_tabs(data_interval_end=None, dag_run=None) -> dict:
        from fieldpipe.assessments.export import export_results_as_of
        from fieldpipe.pipelines.connections import app_database, google_sheets

        with app_database() as conn:
            written = export_results_as_of(conn, day_end(data_interval_end, dag_run), google_sheets())
        return {str(k): v for k, v in written.items()}

    report_anomalies = SQLExecuteQueryOperator(
        task_id="report_anomalies", conn_id=APP_DB_CONN, sql="assessments/anomalies.sql",
        parameters={"interval_end": "{{ day_end(data_interval_end | default(none), dag_run) }}"}, show_return_value_in_logs=True,
    )
    check_no_anomalies = SQLTableCheckOperator(
        task_id="check_no_anomalies", conn_id=APP_DB_CONN, table="assessment_anomalies",
        checks={"nothing_slipped_in": {"check_statement": "COUNT(*) = 0"}}, partition_clause=INTERVAL,
    )
    # Table checks rather than column min/max checks: a day with no marks yet has no rows, and must pass.
    check_summary_rows = SQLTableCheckOperator(
        task_id="check_summary_rows", conn_id=APP_DB_CONN, table="assessment_summaries",
        partition_clause=SUMMARY_DAY, checks=summary_checks(),
    )

    summaries = summarize()
    grade_exam_answers() >> summaries >> [check_summary_rows, export_summary_tabs(), export_results_tabs()]
    report_anomalies >> check_no_anomalies


aggregate_assessments()

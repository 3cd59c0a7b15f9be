"""The DAG test harness itself: convention checks catch each kind of bad DAG file, and `run_dag` runs
a real DAG against the test databases (probe DAGs in a temporary DAGs folder, not the project's)."""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pytest

from fieldpipe.dev.dag_parse import convention_problems, parse_in_subprocess

GOOD_DAG = '''
"""Probe DAG.

Reads the organizations table, writes one organization `{slug}`. Schedule: none, triggered by hand.
Rerun: trigger it again; the write is an upsert.
"""
import pendulum
from airflow.sdk import dag, task

from fieldpipe.pipelines.defaults import DEFAULT_ARGS


@dag(doc_md=__doc__, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False,
     tags=["probe"], default_args=DEFAULT_ARGS)
def {dag_id}():
    @task
    def upsert_organization() -> int:
        from fieldpipe.pipelines.connections import app_database
        from fieldpipe.orgs import ensure_organization

        with app_database("{conn_id}") as conn:
            return ensure_organization(conn, "{slug}", "Probe")

    @task
    def check(organization_id: int) -> None:
        assert organization_id > 0

    check(upsert_organization())


{dag_id}()
'''

BAD_DAGS = {
    "broken.py": '''
        """Broken on purpose."""
        from airflow.sdk import dag
        raise ValueError("this DAG file is broken on purpose")
    ''',
    "sloppy.py": '''
        """Sloppy."""
        import datetime

        import pandas
        import psycopg
        from airflow.decorators import dag, task
        from airflow.sdk import DeadlineAlert, DeadlineReference, SyncCallback

        try:
            psycopg.connect("postgresql://nobody@127.0.0.1:9/nothing")
        except RuntimeError:
            pass


        @dag(schedule="@daily", start_date=datetime.datetime(2026, 1, 1), default_args={"retries": 1},
             deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                                    interval=datetime.timedelta(minutes=5), callback=SyncCallback("builtins.print")))
        def sloppy_pipeline():
            @task(pool="no_such_pool")
            def step():
                pass

            step()


        sloppy_pipeline()
    ''',
}


def write_dag(folder: Path, dag_id: str, conn_id: str = "fieldpipe_db", slug: str = "probe") -> None:
    (folder / f"{dag_id}.py").write_text(GOOD_DAG.format(dag_id=dag_id, conn_id=conn_id, slug=slug))


def test_convention_check_names_each_bad_file_and_keeps_the_good_dags(tmp_path):
    write_dag(tmp_path, "probe_ok")
    for name, source in BAD_DAGS.items():
        (tmp_path / name).write_text(textwrap.dedent(source))

    report = parse_in_subprocess(tmp_path)
    problems = "\n".join(convention_problems(report))

    assert [dag["dag_id"] for dag in report["dags"]] == ["probe_ok", "sloppy_pipeline"]
    assert "broken.py: does not import" in problems
    assert "ValueError: this DAG file is broken on purpose" in problems
    assert "probe_ok" not in problems
    for expected in [
        "sloppy.py: imports pandas at parse time",
        "sloppy.py: opens a database connection at parse time",
        "sloppy.py: imports from a legacy airflow path",
        "dag_id must equal the file name 'sloppy'",
        "doc_md is not the module docstring",
        "has no tags",
        "owner is 'airflow', expected 'fieldpipe'",
        "retries=1, expected at least 2",
        "retry_exponential_backoff is off",
        "pool 'no_such_pool' is not created at init",
        "a deadline calls builtins.print, so its misses reach no operator",
    ]:
        assert expected in problems


@pytest.fixture
def probe_dags_folder(tmp_path, monkeypatch, airflow_db):
    """Point Airflow's DAGs folder at an empty temporary folder for one test."""
    from airflow import settings

    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    monkeypatch.setattr(settings, "DAGS_FOLDER", str(tmp_path))
    return tmp_path


@pytest.mark.airflow
def test_run_dag_writes_to_the_test_app_database_through_fieldpipe_db(probe_dags_folder, run_dag, conn):
    write_dag(probe_dags_folder, "probe_upsert", slug="probe-upsert")

    run = run_dag("probe_upsert")

    assert run.state == "success"
    assert conn.execute("SELECT slug FROM organizations").fetchall() == [{"slug": "probe-upsert"}]


@pytest.mark.airflow
def test_missing_connection_fails_the_task_at_once_naming_it(probe_dags_folder, run_dag, capfd):
    write_dag(probe_dags_folder, "probe_missing_conn", conn_id="no_such_connection")

    started = time.monotonic()
    run = run_dag("probe_missing_conn", expect="failed", retries=None)  # the DAG's own retries (3)
    elapsed = time.monotonic() - started

    first = next(ti for ti in run.get_task_instances() if ti.task_id == "upsert_organization")
    assert first.state == "failed"
    assert first.try_number == 1, "a missing connection must not be retried"
    assert elapsed < 60
    assert "The conn_id `no_such_connection` isn't defined" in capfd.readouterr().out

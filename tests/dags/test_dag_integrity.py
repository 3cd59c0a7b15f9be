"""Every DAG file in the project's dags/ folder imports cleanly and follows the DAG conventions.

The folder is parsed once, in a fresh process, as the dag-processor would parse it; one failing file is
reported with its name and error while the others still load. The parse time is printed at the end of
the test run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldpipe.dev.dag_parse import convention_problems, parse_in_subprocess
from tests.dags import conftest as dags_conftest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"


@pytest.fixture(scope="module")
def report():
    parsed = parse_in_subprocess(DAGS_FOLDER)
    dags_conftest.PARSE_REPORTS.append(parsed)
    return parsed


def test_every_dag_file_imports_and_follows_the_conventions(report):
    problems = convention_problems(report)
    assert not problems, f"{len(problems)} problem(s) in dags/:\n" + "\n".join(problems)


def test_every_dag_file_defines_a_dag(report):
    """A file that silently defines nothing (e.g. a forgotten `my_dag()` call) would vanish from the UI."""
    files_with_dags = {dag["file"] for dag in report["dags"]}
    dag_files = [f for f in report["files"] if not f.startswith("_") and "/" not in f]
    assert sorted(set(dag_files) - files_with_dags - set(report["import_errors"])) == []


def test_every_dag_that_work_waits_on_has_a_deadline_that_reaches_the_operators(report):
    """Airflow 3's SLA is the deadline alert: without one a run stuck for hours tells no one."""
    from fieldpipe.dev.dag_parse import DEADLINE_CALLBACK
    from fieldpipe.pipelines.notify import LATE_DAG_BACKLOGS

    deadlines = {dag["dag_id"]: dag["deadlines"] for dag in report["dags"]}
    for dag_id in [*LATE_DAG_BACKLOGS, "operations", "run_tasks", "announcements", "export_results"]:
        [deadline] = deadlines[dag_id]
        assert deadline["callback"] == DEADLINE_CALLBACK and 0 < deadline["interval_s"] <= 30 * 60, dag_id

"""The `aggregate_assessments` DAG end to end for one daily interval: exam grading, summaries readable
through the API, the Summary tab, and a mark that slipped in by another path failing the check (never counted)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from fieldpipe.dev.demo import load_demo
from tests.fakes.sheets_server import SheetsServer
from tests.helpers import auth
from tests.sheets_support import client_for


@pytest.mark.airflow
def test_a_daily_run_summarizes_exports_and_reports_what_slipped_in(conn, client, run_dag, monkeypatch):
    from fieldpipe.orgs import create_key

    org = load_demo(conn)
    key = create_key(conn, "demo", "collector", create_org=True)
    assessment = conn.execute("SELECT id FROM assessments WHERE organization_id = %s ORDER BY id LIMIT 1", (org,)).fetchone()["id"]
    mark = conn.execute("SELECT * FROM student_marks LIMIT 1").fetchone()
    conn.execute("""INSERT INTO class_results (submission_pk, assessment_id, class_id, item_id, students_present,
                                               students_cleared) VALUES (0, %s, %s, %s, 5, 9)""",
                 (assessment, mark["class_id"], mark["item_id"]))  # cleared above present, by another path
    today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)

    with SheetsServer(create_on_first_use=True) as server:
        monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps(
            {"conn_type": "generic", "extra": {"base_url": server.base_url}}))
        # A manual run gets the last complete daily interval before its date: [today, tomorrow).
        run = run_dag("aggregate_assessments", expect="failed", logical_date=today + dt.timedelta(days=1))
        tab = client_for(server).open_by_key("demo-assessments").worksheet("Summary").get_all_values()
        results = client_for(server).open_by_key("demo-assessments").worksheet("Results").get_all_values()

    assert run.data_interval_start == today
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["check_no_anomalies"] == "failed"
    assert {states[t] for t in ("grade_exam_answers", "summarize", "export_summary_tabs", "export_results_tabs",
                                "report_anomalies", "check_summary_rows")} == {"success"}
    summary = client.get(f"/api/v1/assessments/{assessment}/summary?level=class", headers=auth(key)).get_json()
    assert summary["date"] == today.date().isoformat()
    # The 9 cleared of 5 present is not counted: the demo's numbers stand.
    assert [(r["item"], r["students_present"], r["students_passing"]) for r in summary["rows"]] == [
        ("LO1", 5, 4), ("LO2", 5, 4), ("LO3", 5, 4)]
    assert len(tab) == 13 and tab[0][:2] == ["date", "level"]
    # the Results tab, as of the end of the interval: roll 1 has 9 + 4 + 5 of 20; roll 5 was absent
    assert results[0] == ["class", "roll number", "name", "status", "LO1", "LO2", "LO3", "total", "percentage",
                          "grade", "passed"]
    assert results[1] == ["5A", "1", "Asha Thakur", "assessed", "9", "4", "5", "18", "90", "A", "yes"]
    assert results[5][3:4] == ["absent"] and len(results) == 7


@pytest.mark.airflow
def test_a_manual_run_without_a_logical_date_summarizes_the_day_so_far(conn, client, run_dag, monkeypatch):
    """What the UI's or the REST API's trigger with `logical_date: null` does: no data interval at all."""
    from fieldpipe.orgs import create_key
    from tests.dags.harness import load_dag

    org = load_demo(conn)
    key = create_key(conn, "demo", "collector", create_org=True)
    assessment = conn.execute("SELECT id FROM assessments WHERE organization_id = %s ORDER BY id LIMIT 1", (org,)).fetchone()["id"]
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps({"conn_type": "generic", "extra": {"backend": "xlsx"}}))

    dag = load_dag("aggregate_assessments")
    for task in dag.tasks:
        task.retries = 0
    run = dag.test(logical_date=None)

    assert run.data_interval_start is None and run.state == "success", {
        ti.task_id: ti.state for ti in run.get_task_instances()}
    summary = client.get(f"/api/v1/assessments/{assessment}/summary?level=class", headers=auth(key)).get_json()
    assert summary["date"] == dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert [(r["item"], r["students_passing"]) for r in summary["rows"]] == [("LO1", 4), ("LO2", 4), ("LO3", 4)]


@pytest.mark.airflow
def test_closing_the_demo_exam_puts_its_results_tab_in_the_next_export_results_run(conn, run_dag, monkeypatch, tmp_path):
    from openpyxl import load_workbook

    from fieldpipe.assessments import exams

    org = load_demo(conn)
    exam = conn.execute("SELECT id FROM assessments WHERE organization_id = %s AND submission_level = 'exam'",
                        (org,)).fetchone()["id"]
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps({"conn_type": "generic", "extra": {"backend": "xlsx"}}))
    exams.close_exam(conn, org, exam)
    run_dag("export_results")
    rows = list(load_workbook(tmp_path / "exports" / f"assessment-{exam}.xlsx")["Results"].iter_rows(values_only=True))
    # the classmates who answered on the tablet: roll 2 has 8 of 10, roll 3 has 4; roll 1 never answered
    assert [(r[1], r[3], r[9], r[12]) for r in rows[1:4]] == [("1", "absent", None, "no"), ("2", "assessed", 8, "yes"),
                                                             ("3", "assessed", 4, "yes")]

"""The Summary tab, written through the Sheets export's write_table: to a Sheets-v4 server and to a workbook."""

from __future__ import annotations

import datetime as dt

from openpyxl import load_workbook

from fieldpipe.assessments import aggregate
from fieldpipe.assessments.export import HEADER, SUMMARY_TAB, export_summaries
from fieldpipe.dev.demo import load_demo
from tests.fakes.sheets_server import SheetsServer
from tests.sheets_support import client_for


def _summarized_demo(conn) -> tuple[int, dt.date]:
    org = load_demo(conn)
    assessment = conn.execute("SELECT id FROM assessments WHERE organization_id = %s ORDER BY id LIMIT 1", (org,)).fetchone()["id"]
    end = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"] + dt.timedelta(days=1)
    aggregate.summarize_interval(conn, end - dt.timedelta(days=1), end)
    return assessment, (end - dt.timedelta(days=1)).date()


def test_the_summary_tab_on_a_sheets_server_has_tsp_per_learning_outcome_and_a_rerun_replaces_it(conn):
    assessment, day = _summarized_demo(conn)
    with SheetsServer(create_on_first_use=True) as server:
        connection = (None, {"base_url": server.base_url})
        assert export_summaries(conn, day, connection) == {assessment: 3 + 3 + 3 + 3}   # 3 LOs × 4 levels
        assert export_summaries(conn, day, connection) == {assessment: 12}
        values = client_for(server).open_by_key("demo-assessments").worksheet(SUMMARY_TAB).get_all_values()
    assert values[0] == HEADER and len(values) == 13
    class_rows = [dict(zip(HEADER, r)) for r in values[1:] if r[1] == "class"]
    assert [(r["class"], r["item"], r["students present"], r["students passing"]) for r in class_rows] == [
        ("5A", "LO1", "5", "4"), ("5A", "LO2", "5", "4"), ("5A", "LO3", "5", "4")]


def test_without_a_google_connection_the_summary_goes_to_a_local_workbook(conn, tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    assessment, day = _summarized_demo(conn)
    export_summaries(conn, day, None)
    rows = list(load_workbook(tmp_path / "exports" / f"assessment-{assessment}.xlsx")[SUMMARY_TAB].iter_rows(values_only=True))
    assert list(rows[0]) == HEADER
    district = [r for r in rows[1:] if r[1] == "district"]
    assert [(r[2], r[6], r[10], r[11]) for r in district] == [("Shimla", "LO1", 4, 0.8), ("Shimla", "LO2", 4, 0.8),
                                                             ("Shimla", "LO3", 4, 0.8)]

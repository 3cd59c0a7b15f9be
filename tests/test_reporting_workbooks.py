"""Workbooks an analyst opens: the local Sheets workbook and the Summary tab's chart, locally and on Google."""

from __future__ import annotations

import zipfile

from openpyxl import load_workbook

from fieldpipe.assessments.export import HEADER, SUMMARY_TAB, export_summaries
from tests.fakes.sheets_server import SheetsServer
from tests.test_assessments_export import _summarized_demo

PASSING_RATE = HEADER.index("passing rate") + 1


def test_the_local_summary_tab_is_formatted_and_charts_the_district_passing_rates(conn, tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    assessment, day = _summarized_demo(conn)
    export_summaries(conn, day, None)
    path = tmp_path / "exports" / f"assessment-{assessment}.xlsx"

    ws = load_workbook(path)[SUMMARY_TAB]
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == ws.dimensions
    assert all(c.font.bold for c in ws[1])
    assert [c.value for c in ws[1]] == HEADER
    assert [r[1] for r in ws.iter_rows(min_row=2, max_row=4, values_only=True)] == ["district"] * 3
    assert ws.cell(row=2, column=PASSING_RATE).number_format == "0.0%"
    assert ws.column_dimensions["H"].width >= len("item label")
    with zipfile.ZipFile(path) as book:  # openpyxl keeps charts on save but drops them on load: read the file
        charts = [n for n in book.namelist() if n.startswith("xl/charts/chart")]
        assert len(charts) == 1
        chart = book.read(charts[0]).decode()
    assert "Summary'!$L$2:$L$4" in chart and "Summary'!$H$2:$H$4" in chart  # 3 district rows: rate by LO

    export_summaries(conn, day, None)  # a rerun replaces the tab and its chart
    with zipfile.ZipFile(path) as book:
        assert len([n for n in book.namelist() if n.startswith("xl/charts/chart")]) == 1


def test_the_google_summary_tab_gets_one_chart_and_a_frozen_header_however_often_it_is_written(conn):
    assessment, day = _summarized_demo(conn)
    with SheetsServer(create_on_first_use=True) as server:
        connection = (None, {"base_url": server.base_url})
        export_summaries(conn, day, connection)
        export_summaries(conn, day, connection)
        sheet = server.state.get("demo-assessments").sheet(SUMMARY_TAB)
    assert sheet.frozen_rows == 1
    assert len(sheet.charts) == 1
    spec = sheet.charts[0]["spec"]["basicChart"]
    series = spec["series"][0]["series"]["sourceRange"]["sources"][0]
    assert (series["startColumnIndex"], series["endColumnIndex"], series["endRowIndex"]) == (PASSING_RATE - 1, PASSING_RATE, 4)
    assert spec["chartType"] == "BAR"
    percent = [f for f in sheet.formats if f["cell"]["userEnteredFormat"]["numberFormat"]["type"] == "PERCENT"]
    assert percent and percent[-1]["range"]["startColumnIndex"] == PASSING_RATE - 1

"""The local .xlsx default, `write_table` for other features' tabs, and choosing a target from the connection."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from openpyxl import load_workbook

from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.targets import GoogleSheetsTarget, XlsxTarget, client_from_connection, open_target, write_table
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, as_dicts, edit, sheets_server, submit, survey, target, worksheet_values,
)

SHEET = {"spreadsheet_id": SPREADSHEET, "worksheet": "Responses"}


def workbook_rows(path, title="Responses"):
    return [list(r) for r in load_workbook(path)[title].iter_rows(values_only=True)]


def test_the_local_workbook_gets_the_same_layout_with_native_types_and_edits_in_place(conn, survey, tmp_path):
    path = tmp_path / "survey.xlsx"
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], XlsxTarget(path), SHEET)
    edit(conn, survey, ids[0], monthly_income=42, local_word="जल")
    submit(conn, survey, 1)

    report = export_form(conn, survey["id"], XlsxTarget(path), SHEET)

    header, *rows = workbook_rows(path)
    assert header[:6] == ["Submission ID", "Submitted at (UTC)", "Received at (UTC)", "Collector", "Revision", "Open flags"]
    assert [r[0] for r in rows][:2] == ids and len(rows) == 3
    assert rows[0][header.index("Monthly income")] == 42
    assert rows[0][header.index("Local word for water")] == "जल"
    assert rows[0][header.index("Visit date")] == dt.datetime(2026, 11, 20)  # a date cell
    assert rows[0][header.index("Phone")] == "+91******3210"
    assert rows[0][header.index("Submitted at (UTC)")] == dt.datetime(2026, 11, 20, 4, 45)
    assert (report.updated, report.appended) == (1, 1)


def test_write_table_replaces_a_whole_tab_on_google_and_in_a_workbook(target, sheets_server, tmp_path):
    header = ["School", "Students passing", "Day"]
    write_table(target, "Summary", header, [["A", 10, dt.date(2026, 11, 1)], ["B", 7, dt.date(2026, 11, 1)]])
    write_table(target, "Summary", header, [["C", 3, dt.date(2026, 11, 2)]])

    assert worksheet_values(sheets_server, "Summary") == [header, ["C", "3", "2026-11-02"]]

    workbook = XlsxTarget(tmp_path / "summary.xlsx")
    write_table(workbook, "Summary", header, [["A", 10, dt.date(2026, 11, 1)]])
    write_table(XlsxTarget(tmp_path / "summary.xlsx"), "Summary", header, [["C", 3, dt.date(2026, 11, 2)]])
    assert workbook_rows(tmp_path / "summary.xlsx", "Summary") == [header, ["C", 3, dt.datetime(2026, 11, 2)]]


def test_the_connection_picks_the_target(sheets_server, tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    assert isinstance(open_target("survey", SHEET, None), XlsxTarget)
    local = open_target("survey", SHEET, (None, {"backend": "xlsx"}))
    assert isinstance(local, XlsxTarget) and local.path == tmp_path / "exports" / "survey.xlsx"

    stand_in = open_target("survey", SHEET, (None, {"base_url": sheets_server.base_url}))
    assert isinstance(stand_in, GoogleSheetsTarget)
    assert "Sheet1" in stand_in.worksheets()  # really talks to the configured server

    with pytest.raises(ValueError, match="no service-account key"):
        client_from_connection(None, {})
    with pytest.raises(ValueError):
        client_from_connection(json.dumps({"type": "service_account"}), {})  # an incomplete key is refused

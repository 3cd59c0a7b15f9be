"""The local .xlsx default, `write_table` for other features' tabs, and choosing a target from the connection."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from gspread.exceptions import APIError
from openpyxl import load_workbook

from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.targets import GoogleSheetsTarget, XlsxTarget, client_from_connection, open_target, write_table
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, as_dicts, client_for, edit, sheets_server, submit, survey, target, worksheet_values,
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


def test_the_stand_in_refuses_a_misspelt_member_or_enum_value_as_google_does_and_applies_nothing(sheets_server):
    """The stand-in must not accept what Google answers 400: a misspelt field or enum value would pass here."""
    http = client_for(sheets_server).http_client
    frozen = {"updateSheetProperties": {"properties": {"sheetId": 0, "gridProperties": {"frozenRowCount": 1}},
                                        "fields": "gridProperties.frozenRowCount"}}
    misspelt = {"updateSheetProperties": {"properties": {"sheetId": 0, "gridProperties": {"frozenrowcount": 1}},
                                          "fields": "gridProperties.frozenRowCount"}}
    with pytest.raises(APIError) as refused:
        http.batch_update(SPREADSHEET, {"requests": [frozen, misspelt]})
    assert refused.value.response.status_code == 400
    assert 'Unknown name "frozenrowcount" at \'requests[1].updateSheetProperties.properties.gridProperties\'' \
        in str(refused.value)
    assert sheets_server.state.get(SPREADSHEET).sheet("Sheet1").frozen_rows == 0  # the valid first request too

    with pytest.raises(APIError, match="Invalid value at 'insertDataOption'"):
        http.values_append(SPREADSHEET, "Sheet1!A1", params={"valueInputOption": "USER_ENTERED",
                                                            "insertDataOption": "insert_rows"},
                           body={"values": [["x"]]})
    with pytest.raises(APIError, match="Invalid value at 'data\\[0\\].majorDimension'"):
        http.values_batch_update(SPREADSHEET, {"valueInputOption": "RAW",
                                               "data": [{"range": "Sheet1!A1", "majorDimension": "ROW",
                                                         "values": [["x"]]}]})
    assert sheets_server.cell_values(SPREADSHEET, "Sheet1") == []
    http.batch_update(SPREADSHEET, {"requests": [frozen]})
    assert sheets_server.state.get(SPREADSHEET).sheet("Sheet1").frozen_rows == 1


def test_an_append_google_refuses_fails_the_export_at_once_and_a_rerun_writes_each_row_once(conn, survey, target,
                                                                                            sheets_server):
    ids = submit(conn, survey, 2)
    sheets_server.fail_next(400, path_contains=":append")  # refused outright: nothing was written

    with pytest.raises(APIError):
        export_form(conn, survey["id"], target, SHEET)
    appends = [path for _, path, _ in sheets_server.state.requests if path.endswith(":append")]
    assert len(appends) == 1  # not taken for "may have landed": no re-read of the sheet, no second append
    assert conn.execute("SELECT count(*) AS n FROM sheet_rows").fetchone()["n"] == 0

    report = export_form(conn, survey["id"], target, SHEET)
    assert report.appended == 2
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids


def test_rows_appended_in_several_requests_are_each_mapped_to_their_row_and_edits_land_there(conn, survey,
                                                                                             sheets_server):
    ids = submit(conn, survey, 24)
    small = GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET, max_request_bytes=2_000)
    export_form(conn, survey["id"], small, SHEET)
    assert len([p for _, p, _ in sheets_server.state.requests if p.endswith(":append")]) >= 3

    stored = conn.execute("SELECT submission_id::text AS id, worksheet, row_number FROM sheet_rows").fetchall()
    assert sorted((r["row_number"], r["id"], r["worksheet"]) for r in stored) == [
        (row, submission_id, "Responses") for row, submission_id in enumerate(ids, start=2)]

    edit(conn, survey, ids[0], monthly_income=7)  # a response of the first request
    report = export_form(conn, survey["id"], small, SHEET)
    rows = as_dicts(worksheet_values(sheets_server))
    assert [r["Submission ID"] for r in rows] == ids
    assert [r["Monthly income"] for r in rows] == ["7"] + ["20000"] * 23
    assert (report.updated, report.appended) == (1, 0)


def test_a_column_an_analyst_adds_to_the_local_workbook_is_kept_and_the_cells_after_it_are_written(conn, survey,
                                                                                                   tmp_path):
    path = tmp_path / "survey.xlsx"
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], XlsxTarget(path), SHEET)
    book = load_workbook(path)
    sheet = book["Responses"]
    sheet.insert_cols(5)  # a "Notes" column between "Collector" and "Revision"
    sheet.cell(row=1, column=5, value="Notes")
    sheet.cell(row=2, column=5, value="called back")
    book.save(path)

    edit(conn, survey, ids[0], monthly_income=42)
    ids += submit(conn, survey, 1)
    report = export_form(conn, survey["id"], XlsxTarget(path), SHEET)

    header, *rows = workbook_rows(path)
    assert header[3:7] == ["Collector", "Notes", "Revision", "Open flags"]
    assert [r[0] for r in rows] == ids
    assert [r[header.index("Notes")] for r in rows] == ["called back", None, None]
    assert [r[header.index("Monthly income")] for r in rows] == [42, 20000, 20000]
    assert [r[header.index("Problems seen")] for r in rows] == ["leak, dirty"] * 3  # the last column, after Notes
    assert (report.updated, report.appended) == (1, 1)


def test_characters_a_workbook_cannot_hold_show_as_the_replacement_character(conn, survey, tmp_path):
    path = tmp_path / "survey.xlsx"
    [submission_id] = submit(conn, survey, 1)
    # stored before the API refused control characters: the export must still write the row
    conn.execute("""UPDATE responses SET answers = jsonb_set(answers, '{name}', to_jsonb(E'A\\x01sha\\x1f'::text))
                     WHERE submission_id = %s""", (submission_id,))

    export_form(conn, survey["id"], XlsxTarget(path), SHEET)

    header, row = workbook_rows(path)
    assert row[header.index("Respondent name")] == "A\ufffdsha\ufffd"


def test_edits_to_many_rows_go_in_several_requests_each_under_the_size_limit(conn, survey, sheets_server):
    ids = submit(conn, survey, 12)
    small = GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET, max_request_bytes=2_000)
    export_form(conn, survey["id"], small, SHEET)
    for number, submission_id in enumerate(ids):
        edit(conn, survey, submission_id, monthly_income=number)
    before = len(sheets_server.state.requests)

    report = export_form(conn, survey["id"], small, SHEET)

    writes = [size for _, path, size in sheets_server.state.requests[before:] if path.endswith("/values:batchUpdate")]
    assert len(writes) >= 2 and max(writes) < 2_000 + 1_000
    assert [r["Monthly income"] for r in as_dicts(worksheet_values(sheets_server))] == [str(n) for n in range(12)]
    assert (report.updated, report.appended) == (12, 0)


def test_a_tab_whose_append_answer_is_lost_is_written_again_once(target, sheets_server):
    header = ["School", "Students passing"]
    sheets_server.fail_next(500, after_apply=True, path_contains=":append")  # applied, but the answer is lost

    assert write_table(target, "Summary", header, [["A", 10], ["B", 7]]) == 2

    assert worksheet_values(sheets_server, "Summary") == [header, ["A", "10"], ["B", "7"]]
    assert len([p for _, p, _ in sheets_server.state.requests if p.endswith(":append")]) == 2


def test_a_google_connection_without_a_spreadsheet_id_is_refused_naming_the_setting(sheets_server):
    connection = (None, {"base_url": sheets_server.base_url})
    with pytest.raises(ValueError, match=r"^form 'survey': settings\.sheet\.spreadsheet_id is needed"):
        open_target("survey", {"worksheet": "Responses"}, connection)

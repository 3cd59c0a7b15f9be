"""Sheets edited by hand, quota answers and the cell limit: what the export repairs, what it refuses."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest

from fieldpipe import forms
from fieldpipe.sheets.export import ExportBlocked, export_form
from fieldpipe.sheets.targets import GoogleSheetsTarget
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, SURVEY_QUESTIONS, as_dicts, client_for, edit, sheets_server, submit, survey, target,
    worksheet_values,
)

SHEET = {"spreadsheet_id": SPREADSHEET, "worksheet": "Responses"}


def hand_worksheet(server):
    return client_for(server).open_by_key(SPREADSHEET).worksheet("Responses")


def test_rows_deleted_by_hand_are_detected_the_row_map_rebuilt_and_the_rows_added_again(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 5)
    export_form(conn, survey["id"], target, SHEET)
    hand_worksheet(sheets_server).delete_rows(3)  # the second response's row

    edit(conn, survey, ids[4], monthly_income=99)  # its row moved up from 6 to 5
    report = export_form(conn, survey["id"], target, SHEET)

    rows = as_dicts(worksheet_values(sheets_server))
    assert [r["Submission ID"] for r in rows] == [ids[0], ids[2], ids[3], ids[4], ids[1]]
    assert [r["Monthly income"] for r in rows] == ["20000", "20000", "20000", "99", "20000"]
    assert any("deleted by hand" in r for r in report.repairs)
    assert any("had moved" in r for r in report.repairs)


def test_a_column_moved_by_hand_is_found_by_its_label(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    values = worksheet_values(sheets_server)
    city, income = values[0].index("City"), values[0].index("Monthly income")
    for row in values:  # an analyst swaps two columns
        row[city], row[income] = row[income], row[city]
    hand_worksheet(sheets_server).update(values, "A1")

    edit(conn, survey, ids[1], city="shimla", monthly_income=7)
    report = export_form(conn, survey["id"], target, SHEET)

    rows = as_dicts(worksheet_values(sheets_server))
    assert (rows[1]["City"], rows[1]["Monthly income"]) == ("shimla", "7")
    assert (rows[0]["City"], rows[0]["Monthly income"]) == ("pune", "20000")
    assert any("moved column" in r for r in report.repairs)


def test_a_renamed_column_blocks_the_export_and_nothing_is_written(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    ws = hand_worksheet(sheets_server)
    ws.update([["Income"]], "J1")  # "Monthly income" renamed by hand
    before = worksheet_values(sheets_server)
    writes_before = [r for r in sheets_server.state.requests if r[0] != "GET"]

    edit(conn, survey, ids[0], monthly_income=5)
    submit(conn, survey, 1)
    with pytest.raises(ExportBlocked) as blocked:
        export_form(conn, survey["id"], target, SHEET)

    assert "'Monthly income' is missing from the header" in str(blocked.value)
    assert worksheet_values(sheets_server) == before
    assert [r for r in sheets_server.state.requests if r[0] != "GET"] == writes_before
    status = conn.execute("SELECT last_status FROM sheet_exports").fetchone()["last_status"]
    assert status == "blocked"

    ws.update([["Monthly income"]], "J1")  # restoring the label unblocks it
    report = export_form(conn, survey["id"], target, SHEET)
    assert (report.updated, report.appended) == (1, 1)


def test_a_tab_with_someone_elses_content_is_not_written_to(conn, survey, target, sheets_server):
    submit(conn, survey, 1)
    client_for(sheets_server).open_by_key(SPREADSHEET).add_worksheet("Responses", 10, 3)
    hand_worksheet(sheets_server).update([["Budget", "2026"], ["Rent", "100"]], "A1")

    with pytest.raises(ExportBlocked):
        export_form(conn, survey["id"], target, SHEET)

    assert worksheet_values(sheets_server) == [["Budget", "2026"], ["Rent", "100"]]


def test_lost_export_state_is_rebuilt_from_the_sheet_without_duplicates(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 3)
    export_form(conn, survey["id"], target, SHEET)
    conn.execute("DELETE FROM sheet_exports")  # state and row map gone

    edit(conn, survey, ids[2], name="Changed")
    export_form(conn, survey["id"], target, SHEET)

    rows = as_dicts(worksheet_values(sheets_server))
    assert [r["Submission ID"] for r in rows] == ids
    assert rows[2]["Respondent name"] == "Changed"


def test_429_is_retried_after_the_time_retry_after_names(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    sheets_server.fail_next(429, retry_after=1)
    started = time.monotonic()

    export_form(conn, survey["id"], target, SHEET)

    assert time.monotonic() - started >= 1.0
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids


def test_5xx_answers_are_retried_with_backoff(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    sheets_server.fail_next(500, times=2)
    sheets_server.fail_next(503, path_contains="values:batchUpdate")

    export_form(conn, survey["id"], target, SHEET)

    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids


def test_before_a_tab_passes_its_cell_budget_the_export_continues_in_a_new_tab(conn, survey, target, sheets_server, caplog):
    # 14 columns; a budget of 84 cells holds the header and 5 responses per tab.
    settings = {**SHEET, "cell_limit_share": 84 / 10_000_000}
    ids = submit(conn, survey, 12)

    with caplog.at_level(logging.WARNING, logger="fieldpipe.sheets.export"):
        report = export_form(conn, survey["id"], target, settings)

    assert report.worksheets_started == ["Responses (2)", "Responses (3)"]
    assert "continuing in new tab 'Responses (2)'" in caplog.text
    tabs = [worksheet_values(sheets_server, t) for t in ("Responses", "Responses (2)", "Responses (3)")]
    assert [len(t) for t in tabs] == [6, 6, 3]
    assert all(t[0][0] == "Submission ID" for t in tabs)
    assert [r[0] for t in tabs for r in t[1:]] == ids

    edit(conn, survey, ids[1], name="Edited")  # a row in the first, closed tab is still kept current
    export_form(conn, survey["id"], target, settings)
    assert as_dicts(worksheet_values(sheets_server, "Responses"))[1]["Respondent name"] == "Edited"


def test_large_exports_go_in_few_requests_each_under_the_size_limit(conn, survey, sheets_server):
    ids = submit(conn, survey, 400)
    small = GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET, max_request_bytes=60_000)

    export_form(conn, survey["id"], small, SHEET)

    appends = [size for method, path, size in sheets_server.state.requests if path.endswith(":append")]
    assert 2 <= len(appends) <= 4 and max(appends) < 60_000 + 1_000
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids


def test_the_submission_id_column_moved_by_hand_is_found_and_edits_land_on_their_rows(conn, survey, target,
                                                                                     sheets_server):
    ids = submit(conn, survey, 3)
    export_form(conn, survey["id"], target, SHEET)
    values = worksheet_values(sheets_server)
    for row in values:  # the id column swapped with the collector's
        row[0], row[3] = row[3], row[0]
    hand_worksheet(sheets_server).update(values, "A1")

    edit(conn, survey, ids[2], monthly_income=7)
    report = export_form(conn, survey["id"], target, SHEET)

    rows = as_dicts(worksheet_values(sheets_server))
    assert [r["Submission ID"] for r in rows] == ids
    assert [r["Monthly income"] for r in rows] == ["20000", "20000", "7"]
    assert (report.updated, report.appended) == (1, 0)


def test_a_row_copied_by_hand_is_reported_and_the_first_row_is_kept_current(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    values = worksheet_values(sheets_server)
    hand_worksheet(sheets_server).append_row(values[1])  # the first response's row again, below the others

    edit(conn, survey, ids[0], monthly_income=7)
    report = export_form(conn, survey["id"], target, SHEET)

    assert report.problems == ["tab 'Responses': 1 submission id(s) appear on more than one row; "
                               "the first row is kept current, delete the others by hand"]
    rows = as_dicts(worksheet_values(sheets_server))
    assert [(r["Submission ID"], r["Monthly income"]) for r in rows] == [(ids[0], "7"), (ids[1], "20000"),
                                                                          (ids[0], "20000")]


def test_the_last_column_cleared_by_hand_blocks_the_export_naming_it(conn, survey, target, sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    values = worksheet_values(sheets_server)
    hand_worksheet(sheets_server).update([[""] for _ in values], "N1")  # "Problems seen", the last column

    edit(conn, survey, ids[0], monthly_income=5)
    with pytest.raises(ExportBlocked) as blocked:
        export_form(conn, survey["id"], target, SHEET)
    assert "'Problems seen' is missing from the header" in str(blocked.value)


def test_a_question_relabelled_in_a_new_form_version_gets_its_new_label_over_the_same_column(conn, survey, target,
                                                                                            sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    questions = [{**q, "label": "Income per month"} if q["key"] == "monthly_income" else q for q in SURVEY_QUESTIONS]
    forms.update_form(conn, survey["organization_id"], "survey", {"questions": questions})
    form = forms.get_form_row(conn, survey["organization_id"], "survey")
    ids += submit(conn, form, 1, monthly_income=7)

    export_form(conn, survey["id"], target, SHEET)

    values = worksheet_values(sheets_server)
    assert "Monthly income" not in values[0]
    assert values[0].index("Income per month") == 9  # where "Monthly income" was
    assert [(r["Submission ID"], r["Income per month"]) for r in as_dicts(values)] == [
        (ids[0], "20000"), (ids[1], "20000"), (ids[2], "7")]


def test_a_tab_deleted_by_hand_is_written_again_with_every_row_and_the_repair_is_reported(conn, survey, target,
                                                                                         sheets_server):
    ids = submit(conn, survey, 2)
    export_form(conn, survey["id"], target, SHEET)
    client_for(sheets_server).open_by_key(SPREADSHEET).del_worksheet(hand_worksheet(sheets_server))
    ids += submit(conn, survey, 1)

    report = export_form(conn, survey["id"], target, SHEET)

    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids
    assert report.repairs == ["tab 'Responses' was deleted: its rows are exported again",
                              "2 row(s) missing from the sheet (deleted by hand) are added again"]
    assert report.appended == 3


def test_while_another_run_exports_the_form_a_second_run_skips_it_and_says_so(conn, db_url, survey, target,
                                                                             sheets_server):
    submit(conn, survey, 1)
    export_form(conn, survey["id"], target, SHEET)
    export_id = conn.execute("SELECT id FROM sheet_exports").fetchone()["id"]
    submit(conn, survey, 1)
    with psycopg.connect(db_url, autocommit=True) as other:  # the first run, still exporting
        other.execute("SELECT pg_advisory_lock(hashtext('sheet_export'), %s::int)", (export_id,))
        before = sheets_server.request_count
        report = export_form(conn, survey["id"], target, SHEET)
    assert report.problems == ["another run is exporting this form; skipped"]
    assert report.appended == 0 and sheets_server.request_count == before
    assert len(as_dicts(worksheet_values(sheets_server))) == 1

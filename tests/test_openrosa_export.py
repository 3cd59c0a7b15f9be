"""The tutorial_w_repeats submission, posted as Collect posts it, exported to Sheets (through gspread against the
local Sheets stand-in) matches formhub's expected flat CSV column by column, after the naming in docs/openrosa.md."""

from __future__ import annotations

import csv

import pytest

from fieldpipe.forms import get_form_row
from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.layout import form_columns
from fieldpipe.sheets.repeats import form_repeats, repeat_columns
from fieldpipe.sheets.targets import GoogleSheetsTarget
from tests.fakes.openrosa_client import CollectClient
from tests.openrosa_support import TUTORIAL, new_instance_id, tutorial_instance, upload_form
from tests.sheets_support import SPREADSHEET, client_for, sheets_server, worksheet_values  # noqa: F401

SHEET = {"spreadsheet_id": SPREADSHEET, "worksheet": "Responses"}
GEO_PARTS = {"latitude": "latitude", "longitude": "longitude", "altitude": "altitude", "precision": "accuracy"}


def exported_by_csv_name(conn, form_id: int, server) -> list[dict[str, str]]:
    """Each main-tab row with its repeat rows, named as formhub names CSV columns (docs/openrosa.md)."""
    keys = [c.key for c in form_columns(conn, form_id)]
    main = worksheet_values(server, "Responses")[1:]
    [repeat] = form_repeats(conn, form_id)
    repeat_keys = [c.key for c in repeat_columns(repeat)]
    items = [dict(zip(repeat_keys, row)) for row in worksheet_values(server, f"Responses - {repeat['key']}")[1:]]
    rows = []
    for values in main:
        cells = dict(zip(keys, values))
        named: dict[str, str] = {}
        for key, value in cells.items():
            if key.startswith("answers."):
                name = key[len("answers."):]
                if "#" in name:
                    question, part = name.split("#")
                    part = next(csv_part for csv_part, ours in GEO_PARTS.items() if ours == part)
                    name = f"_{question}_{part}"
                named[name] = value
        for item in (i for i in items if i["submission_id"] == cells["submission_id"]):
            for key, value in item.items():
                if key.startswith("answers."):
                    named[f"{repeat['key']}[{item['index']}]/{key[len('answers.'):]}"] = value
        named["meta/instanceID"] = "uuid:" + cells["submission_id"]
        named["_uuid"] = cells["submission_id"]
        rows.append(named)
    return rows


def as_number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def expected_rows() -> list[dict[str, str]]:
    with open(TUTORIAL / "tutorial_w_repeats.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def posted(client, admin_key, live_api, collector_key, object_store, conn):
    form = upload_form(client, admin_key, TUTORIAL / "tutorial_w_repeats.xls",
                       settings='{"sheet": {"spreadsheet_id": "%s", "worksheet": "Responses"}}' % SPREADSHEET)
    assert form.status_code == 201, form.get_json()
    collect = CollectClient(f"{live_api}/openrosa/acme", "tablet-3", collector_key)
    assert collect.submit((TUTORIAL / "tutorial_w_repeats.xml").read_bytes())[0].status_code == 201
    return get_form_row(conn, 1, "tutorial-w-repeats"), collect


def test_exported_rows_match_formhubs_expected_csv(conn, posted, sheets_server):
    form, _ = posted
    report = export_form(conn, form["id"], GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET), SHEET)
    assert report.appended == 1 and report.repeat_rows == 2
    [exported] = exported_by_csv_name(conn, form["id"], sheets_server)
    [expected] = expected_rows()
    compared = [c for c in expected if c != "_submission_time" and not c.startswith("web_browsers/")]
    # a spreadsheet shows the number 0.0 as "0": numbers compare as numbers, everything else as text
    assert {c: as_number(exported.get(c) or "n/a") for c in compared} == {c: as_number(expected[c]) for c in compared}
    # select_multiple: formhub has one True/False column per choice; fieldpipe one cell listing the choices
    assert exported["web_browsers"] == "" and all(expected[f"web_browsers/{c}"] == "n/a"
                                                  for c in ("firefox", "chrome", "ie", "safari"))


def test_an_edit_rewrites_repeat_rows_in_place_and_blanks_removed_items(conn, posted, sheets_server):
    form, collect = posted
    target = GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET)
    export_form(conn, form["id"], target, SHEET)
    first = "uuid:b31c6ac2-b8ca-4180-914f-c844fa10ed3b"
    edit = tutorial_instance().replace(b"<children><childs_name>Dick</childs_name><childs_age>5</childs_age></children>",
                                       b"").replace(b"<childs_name>Tom</childs_name>", b"<childs_name>Thomas</childs_name>")
    edit = edit.replace(f"<instanceID>{first}</instanceID>".encode(),
                        f"<instanceID>{new_instance_id()}</instanceID><deprecatedID>{first}</deprecatedID>".encode())
    assert collect.submit(edit)[0].status_code == 201
    other = tutorial_instance(instanceID=new_instance_id())
    assert collect.submit(other)[0].status_code == 201
    report = export_form(conn, form["id"], GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET), SHEET)
    assert report.updated == 1 and report.appended == 1
    values = worksheet_values(sheets_server, "Responses - children")
    assert values[0] == ["Submission ID", "Index", "5.1 Childs name?", "5.2 Childs age?"]
    assert values[1][1:] == ["1", "Thomas", "12"]
    assert all(v == "" for v in values[2]), "the removed item's row is blanked"
    assert [v[2] for v in values[3:]] == ["Tom", "Dick"]
    again = export_form(conn, form["id"], GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET), SHEET)
    assert again.repeat_rows == 0 and again.requests == 0, "nothing new: no request at all"

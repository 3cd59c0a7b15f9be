"""CSV and XLSX downloads over real HTTP: columns, typed cells, filters, masking by role, ETag and 304."""

from __future__ import annotations

import csv
import datetime as dt
import io

import openpyxl
import pytest

from tests.helpers import auth, submission
from tests.test_reporting_views import ANSWERS, QUESTIONS

RAW_VALUES = ["+919876543210", "asha@example.org", "Asha Devi", "lives near the temple", "+919812345678"]


@pytest.fixture
def survey(client, admin_key):
    body = {"slug": "water-survey", "title": "Water", "questions": QUESTIONS}
    assert client.post("/api/v1/forms", json=body, headers=auth(admin_key)).status_code == 201


def _post(client, key, **answers):
    sub = submission(answers={**ANSWERS, **answers})
    assert client.post("/api/v1/forms/water-survey/responses", json=sub, headers=auth(key)).status_code == 201
    return sub


def _csv(resp) -> list[dict]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    text = resp.get_data()
    assert text.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(text.decode("utf-8-sig"))))


def test_csv_has_one_row_per_response_with_the_forms_columns(client, admin_key, survey):
    first = _post(client, admin_key)
    _post(client, admin_key, income=9, problems=["dirty"], owner=False)

    resp = client.get("/api/v1/forms/water-survey/export.csv", headers=auth(admin_key))
    rows = _csv(resp)

    assert resp.headers["Content-Type"].startswith("text/csv")
    assert list(rows[0]) == ["submission_id", "submitted_at", "received_at", "collector_id", "collector_phone",
                             "form_version", "revision", "open_flags", "name", "note", "phone", "email", "income",
                             "share", "visited", "owner", "problems"]
    assert rows[0]["submission_id"] == first["submission_id"]
    assert rows[0]["submitted_at"] == "2026-11-20 04:45:00"  # UTC, in a form spreadsheets read as a time
    assert rows[0]["problems"] == "leak, dirty" and rows[1]["problems"] == "dirty"
    assert rows[0]["owner"] == "true" and rows[1]["owner"] == "false"
    assert rows[0]["income"] == "20000" and rows[1]["income"] == "9"
    assert rows[0]["phone"] == "+919876543210"  # an admin key may see personal data


def test_a_collector_key_gets_masked_values_and_may_not_ask_for_unmasked(client, admin_key, collector_key, survey):
    _post(client, admin_key)
    body = client.get("/api/v1/forms/water-survey/export.csv", headers=auth(collector_key)).get_data(as_text=True)
    for raw in RAW_VALUES:
        assert raw not in body
    assert "+91******3210" in body and "a***@example.org" in body

    resp = client.get("/api/v1/forms/water-survey/export.csv?masked=false", headers=auth(collector_key))
    assert resp.status_code == 403 and resp.mimetype == "application/problem+json"
    admin_masked = client.get("/api/v1/forms/water-survey/export.csv?masked=true", headers=auth(admin_key))
    assert "+919876543210" not in admin_masked.get_data(as_text=True)


def test_no_output_shows_a_raw_personal_value_to_a_masked_reader(client, admin_key, collector_key, survey):
    _post(client, admin_key)
    csv_body = client.get("/api/v1/forms/water-survey/export.csv", headers=auth(collector_key)).get_data()
    xlsx_body = client.get("/api/v1/forms/water-survey/export.xlsx", headers=auth(collector_key)).get_data()
    book = openpyxl.load_workbook(io.BytesIO(xlsx_body))
    cells = [str(c) for row in book.active.iter_rows(values_only=True) for c in row if c is not None]
    for raw in RAW_VALUES:
        assert raw.encode() not in csv_body
        assert not any(raw in c for c in cells)


def test_filters_are_the_listings(client, admin_key, survey):
    _post(client, admin_key, problems=["leak"])
    wanted = _post(client, admin_key, problems=["dirty"])
    rows = _csv(client.get("/api/v1/forms/water-survey/export.csv?answer.problems=dirty", headers=auth(admin_key)))
    assert [r["submission_id"] for r in rows] == [wanted["submission_id"]]
    bad = client.get("/api/v1/forms/water-survey/export.csv?answer.income=3", headers=auth(admin_key))
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "answer.income"


def test_a_form_without_responses_downloads_a_header_only_file(client, admin_key, survey):
    rows = client.get("/api/v1/forms/water-survey/export.csv", headers=auth(admin_key)).get_data(as_text=True)
    assert rows.lstrip("\ufeff").splitlines() == [
        "submission_id,submitted_at,received_at,collector_id,collector_phone,form_version,revision,open_flags,"
        "name,note,phone,email,income,share,visited,owner,problems"]
    book = openpyxl.load_workbook(io.BytesIO(
        client.get("/api/v1/forms/water-survey/export.xlsx", headers=auth(admin_key)).get_data()))
    assert book.active.max_row == 1


def test_an_unchanged_export_answers_304_and_a_new_response_changes_the_etag(client, admin_key, survey):
    _post(client, admin_key)
    first = client.get("/api/v1/forms/water-survey/export.csv", headers=auth(admin_key))
    tag = first.headers["ETag"]
    again = client.get("/api/v1/forms/water-survey/export.csv", headers={**auth(admin_key), "If-None-Match": tag})
    assert again.status_code == 304 and again.get_data() == b""
    assert client.get("/api/v1/forms/water-survey/export.csv",
                      headers={**auth(admin_key), "If-None-Match": f'"other", W/{tag}'}).status_code == 304
    masked = client.get("/api/v1/forms/water-survey/export.csv?masked=true",
                        headers={**auth(admin_key), "If-None-Match": tag})
    assert masked.status_code == 200  # another masking is another file
    _post(client, admin_key)
    assert client.get("/api/v1/forms/water-survey/export.csv",
                      headers={**auth(admin_key), "If-None-Match": tag}).status_code == 200


def test_a_formula_typed_by_a_collector_stays_text(client, admin_key, survey):
    _post(client, admin_key, note='=HYPERLINK("http://x.example","click")', name="-2+3")
    rows = _csv(client.get("/api/v1/forms/water-survey/export.csv", headers=auth(admin_key)))
    assert rows[0]["note"] == "'=HYPERLINK(\"http://x.example\",\"click\")"
    assert rows[0]["name"] == "'-2+3"
    assert rows[0]["collector_phone"] == "+919812345678"
    book = openpyxl.load_workbook(io.BytesIO(
        client.get("/api/v1/forms/water-survey/export.xlsx", headers=auth(admin_key)).get_data()))
    header = [c.value for c in book.active[1]]
    cell = book.active.cell(row=2, column=header.index("note") + 1)
    assert cell.data_type == "s" and cell.value.startswith("=HYPERLINK")


def test_xlsx_is_typed_and_ready_for_an_analyst(client, admin_key, survey):
    _post(client, admin_key)
    resp = client.get("/api/v1/forms/water-survey/export.xlsx", headers=auth(admin_key))
    assert resp.status_code == 200 and resp.mimetype.endswith("spreadsheetml.sheet")
    ws = openpyxl.load_workbook(io.BytesIO(resp.get_data())).active
    header = [c.value for c in ws[1]]
    row = dict(zip(header, [c.value for c in ws[2]]))
    assert ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:Q2"
    assert all(c.font.bold for c in ws[1])
    assert row["income"] == 20000 and row["visited"] == dt.datetime(2026, 11, 20)
    assert row["submitted_at"] == dt.datetime(2026, 11, 20, 4, 45)
    assert ws.cell(row=2, column=header.index("visited") + 1).number_format == "yyyy-mm-dd"
    assert ws.column_dimensions["A"].width >= 36  # a whole submission id is visible

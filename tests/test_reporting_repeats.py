"""A form with a repeat: its items as their own view, CSV file in a zip and worksheet, masked like the rest."""

from __future__ import annotations

import csv
import io
import zipfile

import openpyxl
import pytest

from tests.helpers import auth, submission

QUESTIONS = [
    {"key": "head", "label": "Head of household", "type": "text"},
    {"key": "members", "label": "Members", "type": "repeat", "questions": [
        {"key": "member_name", "label": "Name", "type": "text", "mask": True},
        {"key": "age", "label": "Age", "type": "integer"},
        {"key": "mobile", "label": "Mobile", "type": "phone", "mask": True},
    ]},
]
ANSWERS = {"head": "Gita", "members": [
    {"member_name": "Ravi Kumar", "age": 34, "mobile": "+919876543210"},
    {"member_name": "Meena Kumari", "age": 9},
]}


@pytest.fixture
def household(client, admin_key):
    body = {"slug": "census", "title": "Census", "questions": QUESTIONS}
    assert client.post("/api/v1/forms", json=body, headers=auth(admin_key)).status_code == 201
    sub = submission(answers=ANSWERS)
    assert client.post("/api/v1/forms/census/responses", json=sub, headers=auth(admin_key)).status_code == 201
    return sub


def test_a_repeat_downloads_as_its_own_csv_in_a_zip_keyed_by_submission_and_index(client, collector_key, household):
    resp = client.get("/api/v1/forms/census/export.csv", headers=auth(collector_key))
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    assert 'filename="census.zip"' in resp.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(resp.get_data())) as book:
        assert book.namelist() == ["census.csv", "census-members.csv"]
        items = list(csv.DictReader(io.StringIO(book.read("census-members.csv").decode("utf-8-sig"))))
        main = list(csv.DictReader(io.StringIO(book.read("census.csv").decode("utf-8-sig"))))
    assert "members" not in main[0] and main[0]["head"] == "Gita"
    assert [(i["submission_id"], i["index"], i["age"]) for i in items] == [
        (household["submission_id"], "1", "34"), (household["submission_id"], "2", "9")]
    assert items[0]["mobile"] == "+91******3210" and items[0]["member_name"] == "" and items[1]["mobile"] == ""
    assert b"Ravi" not in resp.get_data() and b"9876543210" not in resp.get_data()


def test_a_repeat_is_a_worksheet_of_the_xlsx_download(client, admin_key, household):
    book = openpyxl.load_workbook(io.BytesIO(
        client.get("/api/v1/forms/census/export.xlsx", headers=auth(admin_key)).get_data()))
    assert book.sheetnames == ["census", "census-members"]
    rows = list(book["census-members"].iter_rows(values_only=True))
    assert rows[0] == ("submission_id", "index", "member_name", "age", "mobile")
    assert rows[1] == (household["submission_id"], 1, "Ravi Kumar", 34, "+919876543210")  # admin: unmasked


def test_a_repeat_has_its_own_masked_reporting_view(conn, household):
    with conn.transaction():
        conn.execute("SET LOCAL ROLE fieldpipe_reporting")
        items = conn.execute('SELECT * FROM reporting."acme__census__members" ORDER BY index').fetchall()
    assert [(i["index"], i["age"], i["mobile"], i["member_name"]) for i in items] == [
        (1, 34, "+91******3210", None), (2, 9, None, None)]

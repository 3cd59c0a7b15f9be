"""Fixtures for the Sheets export tests: the local Sheets stand-in, real gspread clients, a survey form."""

from __future__ import annotations

import uuid

import gspread
import pytest
import requests

from fieldpipe import forms, orgs, responses
from fieldpipe.sheets.quota import RetryPolicy
from fieldpipe.sheets.targets import GoogleSheetsTarget, sheets_client
from tests.fakes.sheets_server import SheetsServer
from tests.helpers import HOUSEHOLD_QUESTIONS, submission

SPREADSHEET = "sheet-under-test"
SURVEY_QUESTIONS = HOUSEHOLD_QUESTIONS + [
    {"key": "visited_on", "label": "Visit date", "type": "date"},
    {"key": "problems", "label": "Problems seen", "type": "multi_choice",
     "choices": [{"value": "leak"}, {"value": "dirty"}, {"value": "dry"}]},
]
ANSWERS = {"name": "Asha", "phone": "+919876543210", "city": "pune", "monthly_income": 20000,
           "monthly_savings": 5000, "local_word": "पानी", "visited_on": "2026-11-20", "problems": ["leak", "dirty"]}


@pytest.fixture
def sheets_server():
    with SheetsServer() as server:
        server.create_spreadsheet(SPREADSHEET, "Survey export", ("Sheet1",))
        yield server


def client_for(server: SheetsServer, attempts: int = 4) -> gspread.Client:
    return sheets_client(requests.Session(), base_url=server.base_url, retry=RetryPolicy(attempts=attempts, base_delay=0.01))


@pytest.fixture
def target(sheets_server):
    return GoogleSheetsTarget(client_for(sheets_server), SPREADSHEET)


def worksheet_values(server: SheetsServer, title: str = "Responses") -> list[list[str]]:
    """What an analyst sees, read with gspread's own high-level API."""
    return client_for(server).open_by_key(SPREADSHEET).worksheet(title).get_all_values()


def as_dicts(values: list[list[str]]) -> list[dict[str, str]]:
    header, *rows = values
    return [dict(zip(header, row)) for row in rows]


@pytest.fixture
def survey(conn):
    organization_id = orgs.ensure_organization(conn, "acme", "Acme")
    forms.create_form(conn, organization_id, {"slug": "survey", "title": "Survey", "questions": SURVEY_QUESTIONS,
                                     "settings": {"sheet": {"spreadsheet_id": SPREADSHEET, "worksheet": "Responses"}}})
    return forms.get_form_row(conn, organization_id, "survey")


def submit(conn, form: dict, count: int = 1, **answers) -> list[str]:
    """Ingest `count` survey responses (answers overridden by `answers`; None drops one); return their ids."""
    merged = {k: v for k, v in {**ANSWERS, **answers}.items() if v is not None}
    items = [submission(submission_id=str(uuid.uuid4()), answers=merged) for _ in range(count)]
    for start in range(0, count, responses.MAX_BATCH):
        outcomes = responses.ingest(conn, form, items[start:start + responses.MAX_BATCH])
        assert {o.status for o in outcomes} == {"created"}, [o.errors for o in outcomes if o.errors]
    return [i["submission_id"] for i in items]


def edit(conn, form: dict, submission_id: str, **answers) -> None:
    _, changed = responses.edit_response(conn, form, submission_id, {"answers": {**ANSWERS, **answers}})
    assert changed

"""The `export_sheets` DAG end to end: forms with a sheet in a few mapped groups, writing to the stand-in
through the `google_sheets` connection; forms without a sheet setting are left alone."""

from __future__ import annotations

import json

import pytest

from fieldpipe import forms
from fieldpipe.sheets.jobs import pending_exports
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, SURVEY_QUESTIONS, as_dicts, sheets_server, submit, survey, worksheet_values,
)


def test_only_forms_with_a_sheet_setting_are_exported_weighed_by_their_new_responses(conn, survey):
    forms.create_form(conn, survey["organization_id"], {"slug": "no-sheet", "title": "No sheet",
                                                        "questions": SURVEY_QUESTIONS})
    submit(conn, forms.get_form_row(conn, survey["organization_id"], "no-sheet"), 3)
    submit(conn, survey, 2)
    assert pending_exports(conn) == [{"key": survey["id"], "name": "acme/survey", "rows": 2}]


@pytest.mark.airflow
def test_the_dag_exports_each_form_to_its_sheet(conn, survey, sheets_server, run_dag, monkeypatch):
    ids = submit(conn, survey, 3)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps(
        {"conn_type": "generic", "extra": {"base_url": sheets_server.base_url}}))

    run = run_dag("export_sheets")

    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "export_group"]
    assert len(mapped) == 1 and mapped[0].pool == "sheets_api"
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids

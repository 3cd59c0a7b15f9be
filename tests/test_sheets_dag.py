"""The `export_sheets` DAG end to end: one mapped task per form with a sheet, writing to the stand-in
through the `google_sheets` connection; forms without a sheet setting are left alone."""

from __future__ import annotations

import json

import pytest

from fieldpipe import forms
from fieldpipe.sheets.jobs import forms_with_sheets
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, SURVEY_QUESTIONS, as_dicts, sheets_server, submit, survey, worksheet_values,
)


def test_only_forms_with_a_sheet_setting_are_exported(conn, survey):
    forms.create_form(conn, survey["organization_id"], {"slug": "no-sheet", "title": "No sheet",
                                                        "questions": SURVEY_QUESTIONS})
    assert forms_with_sheets(conn) == [{"form_id": survey["id"], "slug": "acme/survey"}]


@pytest.mark.airflow
def test_the_dag_exports_each_form_to_its_sheet(conn, survey, sheets_server, run_dag, monkeypatch):
    ids = submit(conn, survey, 3)
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps(
        {"conn_type": "generic", "extra": {"base_url": sheets_server.base_url}}))

    run = run_dag("export_sheets")

    mapped = [ti for ti in run.get_task_instances() if ti.task_id == "export_form"]
    assert len(mapped) == 1 and mapped[0].pool == "sheets_api"
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server))] == ids

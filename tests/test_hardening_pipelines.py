"""Issue 11: one poisoned row, form or setting never stops the others; exported cells are what was answered;
a form poisoned before the fix is repaired by `fieldpipe repair responses`."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from openpyxl import load_workbook

from fieldpipe import forms
from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.jobs import export_form_sheet
from fieldpipe.sheets.targets import XlsxTarget
from tests.helpers import auth, put_rules
from tests.sheets_support import (  # noqa: F401  (fixtures)
    SPREADSHEET, SURVEY_QUESTIONS, as_dicts, edit, sheets_server, submit, survey, worksheet_values,
)


def xlsx_rows(path) -> list[dict]:
    sheet = load_workbook(path)["Responses"]
    header = [c.value for c in sheet[1]]
    return [dict(zip(header, (c for c in row))) for row in sheet.iter_rows(min_row=2)]


def test_xlsx_cells_hold_text_as_text_and_cleared_answers_are_cleared(conn, survey, tmp_path):
    path = tmp_path / "survey.xlsx"
    [first] = submit(conn, survey, 1, local_word="=HYPERLINK(\"http://evil\",\"x\")", name="+91 Asha")
    export_form(conn, survey["id"], XlsxTarget(path))
    row = xlsx_rows(path)[0]
    assert row["Local word for water"].value == '=HYPERLINK("http://evil","x")'
    assert row["Local word for water"].data_type == "s"
    with zipfile.ZipFile(path) as book:
        assert not any("<f>" in book.read(name).decode() for name in book.namelist() if name.startswith("xl/worksheets/"))

    edit(conn, survey, first, local_word=None)  # the edit clears the answer
    export_form(conn, survey["id"], XlsxTarget(path))
    assert xlsx_rows(path)[0]["Local word for water"].value is None


def poison(conn, submission_id: str, *, answers: dict | None = None, submitted_at: str | None = None) -> None:
    """Make a stored row hold what the API refuses today, as rows stored before issue 11 could."""
    if answers:
        conn.execute("UPDATE responses SET answers = answers || %s::jsonb, updated_at = clock_timestamp() "
                     "WHERE submission_id = %s", (json.dumps(answers), submission_id))
    if submitted_at:
        for table in ("responses", "response_revisions"):
            conn.execute(f"UPDATE {table} SET submitted_at = %s WHERE "
                         + ("submission_id = %s" if table == "responses" else
                            "response_id = (SELECT id FROM responses WHERE submission_id = %s)"),
                         (submitted_at, submission_id))


def test_a_control_character_stored_before_the_fix_does_not_fail_the_workbook(conn, survey, tmp_path):
    [poisoned, healthy] = submit(conn, survey, 2)
    poison(conn, poisoned, answers={"local_word": "bell\u0007here"})
    report = export_form(conn, survey["id"], XlsxTarget(tmp_path / "survey.xlsx"))
    assert report.appended == 2
    cells = [r["Local word for water"].value for r in xlsx_rows(tmp_path / "survey.xlsx")]
    assert cells == ["bell\ufffdhere", "पानी"]


def test_a_form_whose_sheet_setting_is_removed_mid_run_is_skipped_not_failed(conn, survey, sheets_server):
    submit(conn, survey, 1)
    forms.update_form(conn, survey["organization_id"], "survey", {"settings": {}})
    report = export_form_sheet(conn, survey["id"], None)
    assert report["skipped"] and "no longer exports" in report["summary"]
    assert conn.execute("SELECT count(*) AS n FROM pipeline_failures").fetchone()["n"] == 0


@pytest.fixture
def second_survey(conn, survey):
    forms.create_form(conn, survey["organization_id"], {
        "slug": "second", "title": "Second", "questions": SURVEY_QUESTIONS,
        "settings": {"sheet": {"spreadsheet_id": SPREADSHEET, "worksheet": "Second"}}})
    return forms.get_form_row(conn, survey["organization_id"], "second")


@pytest.mark.airflow
def test_a_poisoned_form_fails_alone_is_listed_and_is_repaired_by_the_documented_command(
        conn, survey, second_survey, sheets_server, run_dag, monkeypatch, client, admin_key, db_url):
    [poisoned, *_] = submit(conn, survey, 3)
    healthy = submit(conn, second_survey, 2)
    poison(conn, poisoned, submitted_at="0001-01-01T00:00:00+05:30",
           answers={"monthly_income": int("9" * 401), "local_word": "bell\u0007"})
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", json.dumps(
        {"conn_type": "generic", "extra": {"base_url": sheets_server.base_url}}))
    monkeypatch.setenv("FIELDPIPE_PIPELINE_GROUP_ROWS", "1")  # each form is work enough for a group of its own

    run = run_dag("export_sheets", expect="failed")

    states = {ti.map_index: ti.state for ti in run.get_task_instances() if ti.task_id == "export_group"}
    assert sorted(states.values()) == ["failed", "success"]
    assert [r["Submission ID"] for r in as_dicts(worksheet_values(sheets_server, "Second"))] == healthy
    listed = client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"]
    assert [(f["pipeline"], f["form"]) for f in listed] == [("export_sheets", "survey")]
    assert listed[0]["error"] == "DataError" and "999999" not in listed[0]["reason"]

    listing = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "repair", "responses", "acme", "survey"],
                             capture_output=True, text=True, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    assert listing.returncode == 0, listing.stderr
    assert "submitted_at (range)" in listing.stdout and "answers.monthly_income (range)" in listing.stdout
    assert "answers.local_word (character)" in listing.stdout and "nothing changed" in listing.stdout
    assert "9999" not in listing.stdout  # the values themselves are not printed
    applied = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "repair", "responses", "acme", "survey", "--apply"],
                             capture_output=True, text=True, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    assert applied.returncode == 0 and "repaired 3 value(s) in 1 response(s)" in applied.stdout, applied.stdout

    run_dag("export_sheets")
    assert client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"] == []
    rows = {r["Submission ID"]: r for r in as_dicts(worksheet_values(sheets_server))}
    assert rows[poisoned]["Monthly income"] == "" and rows[poisoned]["Local word for water"] == "bell"
    got = client.get(f"/api/v1/forms/survey/responses/{poisoned}/revisions", headers=auth(admin_key))
    assert got.status_code == 200 and [r["revision"] for r in got.get_json()["items"]] == [1, 2]
    kept = conn.execute("SELECT field, original FROM response_repairs ORDER BY field, revision").fetchall()
    assert [k["field"] for k in kept] == ["answers.local_word", "answers.monthly_income", "submitted_at"]
    assert kept[1]["original"] == "9" * 401 and kept[2]["original"].endswith("BC")


INCOME_RULES = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings exceed income"
expectations:
  - id: income-in-survey-range
    expectation: expect_column_values_to_be_between
    kwargs: {column: monthly_income, min_value: 0, max_value: 1000000}
    message: "Monthly income {monthly_income} is outside the survey's range"
"""


def test_a_huge_integer_stored_before_the_fix_does_not_stop_validation(conn, survey, client, admin_key):
    from fieldpipe.rules.validate import validate_slug

    put_rules(client, admin_key, "survey", INCOME_RULES)
    [poisoned, broken_rule, fine] = submit(conn, survey, 3)
    poison(conn, poisoned, answers={"monthly_income": int("9" * 401)})
    poison(conn, broken_rule, answers={"monthly_savings": 30000, "monthly_income": 2_000_000})

    [result] = validate_slug(conn, "survey")  # used to fail on the ::float8 cast for the whole form, every run

    flagged = {(r["submission_id"], r["rule_id"]) for r in conn.execute(
        """SELECT r.submission_id::text, f.rule_id FROM flags f JOIN responses r ON r.id = f.response_id
            WHERE f.status = 'open'""")}
    assert (broken_rule, "income-in-survey-range") in flagged
    assert not any(s == fine for s, _ in flagged)
    assert result.checked == 3 and not result.broken
    assert conn.execute("SELECT count(*) AS n FROM pipeline_failures").fetchone()["n"] == 0


def test_rules_that_no_longer_fit_are_listed_as_the_forms_pipeline_failure_until_fixed(conn, survey, client,
                                                                                       admin_key):
    from fieldpipe.rules.validate import ValidationFailed, validate_slug

    put_rules(client, admin_key, "survey", INCOME_RULES)
    submit(conn, survey, 1)
    without_savings = [q for q in SURVEY_QUESTIONS if q["key"] != "monthly_savings"]
    assert client.patch("/api/v1/forms/survey", headers=auth(admin_key),
                      json={"questions": without_savings}).status_code == 200
    with pytest.raises(ValidationFailed):
        validate_slug(conn, "survey")
    [listed] = client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"]
    assert listed["pipeline"] == "validate_responses" and listed["form"] == "survey"
    assert "savings-within-income" in listed["reason"] and listed["error"] == "RulesBroken"
    put_rules(client, admin_key, "survey", INCOME_RULES.replace("monthly_savings <= monthly_income",
                                                                 "monthly_income >= 0"))
    validate_slug(conn, "survey")
    assert client.get("/api/v1/pipeline-failures", headers=auth(admin_key)).get_json()["items"] == []

"""The demo organization `demo` with example forms and the demo school's assessment, loaded by `make up` (idempotent)."""

from __future__ import annotations

import json
import uuid

import psycopg

from fieldpipe import forms, responses
from fieldpipe.config import REPO_ROOT
from fieldpipe.openrosa import submit
from fieldpipe.xforms import parse_xform, xlsform_to_xform
from fieldpipe.dev.demo_announcements import load_demo_announcements
from fieldpipe.dev.demo_assessments import load_demo_assessments
from fieldpipe.dev.demo_enrollment import load_demo_schools, load_demo_transfer
from fieldpipe.dev.demo_exams import load_demo_exam
from fieldpipe.orgs import ensure_organization
from fieldpipe.problems import Problem
from fieldpipe.rules import store as rules_store
from fieldpipe.rules.loader import read_document, rules_dir

DEMO_ORG = "demo"

HOUSEHOLD_SURVEY = {
    "slug": "household-survey",
    "title": "Household survey",
    "questions": [
        # Personal answers are masked wherever analysts read them (reporting views, Parquet, downloads, Sheets).
        {"key": "name", "label": "Respondent name", "type": "text", "required": True, "mask": "hash"},
        {"key": "phone", "label": "Respondent phone", "type": "phone", "mask": True},
        {"key": "city", "label": "City", "type": "single_choice", "required": True,
         "choices": [{"value": "pune", "label": "Pune"}, {"value": "nagpur", "label": "Nagpur"},
                     {"value": "shimla", "label": "Shimla"}, {"value": "varanasi", "label": "Varanasi"}]},
        {"key": "monthly_income", "label": "Monthly income (INR)", "type": "integer", "required": True},
        {"key": "monthly_savings", "label": "Monthly savings (INR)", "type": "integer", "required": True},
        {"key": "local_word", "label": "Local word for 'water'", "type": "text"},
    ],
    # Exported by the export_sheets DAG (to var/exports/household-survey.xlsx without a Google key);
    # each response with a phone gets an SMS receipt (send_sms DAG; var/sms/sent.jsonl locally).
    "settings": {"sheet": {"spreadsheet_id": "demo-household-survey", "worksheet": "Responses"},
                 "sms_receipt": {"phone_question": "phone",
                                 "template": "Thank you {name}, your household survey is in: {city}, income "
                                             "{monthly_income}, savings {monthly_savings}."}},
}

WATER_POINT_AUDIT = {
    "slug": "water-point-audit",
    "title": "Water point audit",
    "questions": [
        {"key": "village", "label": "Village", "type": "text", "required": True},
        {"key": "visited_on", "label": "Visit date", "type": "date", "required": True},
        {"key": "working", "label": "Is the pump working?", "type": "boolean", "required": True},
        {"key": "problems", "label": "Problems seen", "type": "multi_choice",
         "choices": [{"value": "leak"}, {"value": "dirty"}, {"value": "broken_handle"}, {"value": "dry"}]},
        {"key": "depth_m", "label": "Water depth (m)", "type": "decimal"},
        {"key": "notes", "label": "Notes", "type": "long_text"},
    ],
    # Exported by the export_sheets DAG (to var/exports/water-point-audit.xlsx without a Google key).
    "settings": {"sheet": {"spreadsheet_id": "demo-water-point-audit", "worksheet": "Responses"}},
}

DEMO_FORMS = [HOUSEHOLD_SURVEY, WATER_POINT_AUDIT]

# (name, phone, city, monthly income, monthly savings); the last saves more than it earns: a flag.
YESTERDAYS_ANSWERS = [
    ("Asha Devi", "+919876543210", "pune", 24000, 4000),
    ("Ravi Kumar", "+919812300011", "nagpur", 18000, 2500),
    ("Meena Thakur", "+919812300012", "shimla", 30000, 6000),
    ("Suresh Yadav", "+919812300013", "varanasi", 15000, 16000),
]


def load_demo(conn: psycopg.Connection) -> int:
    """Create the demo organization and its forms unless they exist; return the organization id."""
    organization_id = ensure_organization(conn, DEMO_ORG, "Demo organization")
    for definition in DEMO_FORMS:
        try:
            with conn.transaction():
                forms.create_form(conn, organization_id, definition)
        except Problem as problem:
            if problem.slug != "already-exists":
                raise
    load_demo_rules(conn, organization_id)
    load_demo_assessments(conn, organization_id)
    load_demo_exam(conn, organization_id)  # issue 25: an exam students sit themselves
    load_demo_schools(conn, organization_id)  # issue 19: a second school to transfer to
    load_demo_announcements(conn, organization_id)  # issue 18: a Hindi announcement to the demo school's guardians
    load_demo_xlsform(conn, organization_id)
    load_yesterdays_responses(conn, organization_id)
    return organization_id


# --- business rules: include/rules/<slug>.yaml becomes the demo form's first rules version ---
def load_demo_rules(conn: psycopg.Connection, organization_id: int) -> None:
    """Only for a demo form without rules: rules changed through the API survive the next `make up`."""
    for definition in DEMO_FORMS:
        path = rules_dir() / f"{definition['slug']}.yaml"
        form = forms.get_form_row(conn, organization_id, definition["slug"])
        if form["rules_version"] is None and path.exists():
            rules_store.save(conn, form, read_document(path), "demo loader", source=str(path))


def load_demo_with_storage(conn: psycopg.Connection) -> str:
    """Demo data that writes to object storage (issue 19: a certificate's PDF), once it is up; idempotent."""
    load_demo_import(conn)  # issue 20
    return load_demo_transfer(conn, ensure_organization(conn, DEMO_ORG, "Demo organization"))


# --- field apps: an XLSForm-defined form that ODK Collect downloads, with one visit posted as Collect would ---
SCHOOL_VISIT_XLSFORM = REPO_ROOT / "include" / "forms" / "school-visit.md"
SCHOOL_VISIT_SETTINGS = {
    # Exported by the export_sheets DAG: a 'Responses' tab and a 'Responses - classroom' tab, one row per classroom.
    "sheet": {"spreadsheet_id": "demo-school-visit", "worksheet": "Responses"},
    "sms_receipt": {"phone_question": "headteacher_phone",
                    "template": "Thank you {visitor}: the school visit is recorded."},
}
SCHOOL_VISIT_INSTANCE = """<data id="school_visit" version="2026-11-1">
  <started_at>2026-11-28T09:30:00.000+05:30</started_at><visitor>Meera</visitor>
  <headteacher_phone>+919876500011</headteacher_phone>
  <school><name>GPS Dhalli</name><district>shimla</district><location>31.1048 77.1734 2205.0 4.5</location><photo/></school>
  <facilities>toilets water</facilities>
  <classroom><grade>3</grade><present>27</present><enrolled>30</enrolled><attendance>90</attendance></classroom>
  <classroom><grade>5</grade><present>19</present><enrolled>25</enrolled><attendance>76</attendance></classroom>
  <meta><instanceID>uuid:5c0b3a52-8d7e-4f3e-9a51-6f0d2c1e9b77</instanceID></meta>
</data>"""


def load_demo_xlsform(conn: psycopg.Connection, organization_id: int) -> None:
    """The school-visit XLSForm as a form (once) and one visit through the OpenRosa submission path (a duplicate
    on later runs, so nothing changes)."""
    xform = parse_xform(xlsform_to_xform(SCHOOL_VISIT_XLSFORM.read_bytes(), SCHOOL_VISIT_XLSFORM.name))
    try:
        with conn.transaction():
            forms.create_xform_form(conn, organization_id, xform,
                                    {"slug": "school-visit", "settings": json.dumps(SCHOOL_VISIT_SETTINGS)})
    except Problem as problem:
        if problem.slug != "already-exists":
            raise
    with conn.transaction():
        submit(conn, organization_id, SCHOOL_VISIT_INSTANCE.encode(), [], "demo-tablet", max_file_bytes=0)


# --- bulk import (issue 20): a sample CSV dropped where the import_responses DAG looks ---
DEMO_IMPORT_FILE = "sample-households.csv"
DEMO_IMPORT_ROWS = [
    ["submitted_at", "collector_id", "name", "phone", "city", "monthly_income", "monthly_savings", "local_word"],
    ["2026-10-02T09:30:00+05:30", "enum-3", "Meera", "", "nagpur", "18000", "3000", "पाणी"],
    ["2026-10-02T11:05:00+05:30", "enum-3", "Ravi", "", "pune", "22000", "4000", "पाणी"],
    ["2026-10-03T10:15:00+05:30", "enum-4", "Sunita", "", "varanasi", "15000", "2500", "पानी"],
    # Reported in the import's report (row 5, city) and skipped; the other rows land.
    ["2026-10-03T12:40:00+05:30", "enum-4", "Arjun", "", "paris", "21000", "5000", "पानी"],
]


def load_demo_import(conn: psycopg.Connection) -> None:
    """Drop the sample CSV into the household survey's incoming/ prefix once; import_responses imports it."""
    import csv
    import io

    from fieldpipe.imports.jobs import incoming_key
    from fieldpipe.objectstore import default_store

    if conn.execute("SELECT 1 FROM imports WHERE org_slug = %s AND file_name = %s",
                    (DEMO_ORG, DEMO_IMPORT_FILE)).fetchone():
        return
    text = io.StringIO()
    csv.writer(text).writerows(DEMO_IMPORT_ROWS)
    default_store().put(incoming_key(DEMO_ORG, HOUSEHOLD_SURVEY["slug"], DEMO_IMPORT_FILE), text.getvalue().encode())


def load_yesterdays_responses(conn: psycopg.Connection, organization_id: int) -> None:
    """Household-survey responses received yesterday (UTC), once: so the first `archive_responses` run under
    `make up` writes yesterday's Parquet partition, and the reporting views and downloads have rows. Their
    `updated_at` stays the time they were stored: the pipelines' watermarks and the backlog alarms read it, and a
    backdated one made a fresh `make up` mail an "unvalidated backlog" notice."""
    form = forms.get_form_row(conn, organization_id, HOUSEHOLD_SURVEY["slug"])
    if conn.execute("SELECT 1 FROM responses WHERE form_id = %s LIMIT 1", (form["id"],)).fetchone():
        return
    outcomes = responses.ingest(conn, form, [{
        "submission_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"fieldpipe-demo/household-survey/{n}")),
        "submitted_at": "2026-11-01T10:00:00+05:30",
        "collector": {"id": f"enum-{n % 3 + 1}", "phone": "+919812345678"},
        "answers": {"name": name, "phone": phone, "city": city, "monthly_income": income, "monthly_savings": savings},
    } for n, (name, phone, city, income, savings) in enumerate(YESTERDAYS_ANSWERS)])
    conn.execute(
        """UPDATE responses SET received_at = r.yesterday, submitted_at = r.yesterday
             FROM (SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '12 hours'
                          AS yesterday) r
            WHERE form_id = %s AND submission_id = ANY(%s::uuid[])""",
        (form["id"], [o.submission_id for o in outcomes]))

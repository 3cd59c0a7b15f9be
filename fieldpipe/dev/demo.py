"""The demo organization `demo` with example forms and the demo school's assessment, loaded by `make up` (idempotent)."""

from __future__ import annotations

import psycopg

from fieldpipe import forms
from fieldpipe.dev.demo_assessments import load_demo_assessments
from fieldpipe.dev.demo_enrollment import load_demo_schools, load_demo_transfer
from fieldpipe.orgs import ensure_organization
from fieldpipe.problems import Problem
from fieldpipe.rules import store as rules_store
from fieldpipe.rules.loader import read_document, rules_dir

DEMO_ORG = "demo"

HOUSEHOLD_SURVEY = {
    "slug": "household-survey",
    "title": "Household survey",
    "questions": [
        {"key": "name", "label": "Respondent name", "type": "text", "required": True},
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
    load_demo_schools(conn, organization_id)  # issue 19: a second school to transfer to
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
    return load_demo_transfer(conn, ensure_organization(conn, DEMO_ORG, "Demo organization"))

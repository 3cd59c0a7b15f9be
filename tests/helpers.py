"""Small helpers the tests share: auth headers, a household-survey form and submission, saving rules."""

import textwrap
import uuid

import yaml


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


HOUSEHOLD_QUESTIONS = [
    {"key": "name", "label": "Respondent name", "type": "text", "required": True},
    {"key": "phone", "label": "Phone", "type": "phone", "mask": True},
    {"key": "city", "label": "City", "type": "single_choice", "required": True,
     "choices": [{"value": "pune", "label": "Pune"}, {"value": "nagpur", "label": "Nagpur"}, {"value": "shimla", "label": "Shimla"}]},
    {"key": "monthly_income", "label": "Monthly income", "type": "integer"},
    {"key": "monthly_savings", "label": "Monthly savings", "type": "integer"},
    {"key": "local_word", "label": "Local word for water", "type": "text"},
]


def submission(**overrides) -> dict:
    """A valid household-survey submission; override any top-level field or answers."""
    body = {
        "submission_id": str(uuid.uuid4()),
        "submitted_at": "2026-11-20T10:15:00+05:30",
        "collector": {"id": "enum-7", "phone": "+919812345678"},
        "answers": {"name": "Asha", "phone": "+919876543210", "city": "pune", "monthly_income": 20000,
                    "monthly_savings": 5000, "local_word": "पानी"},
    }
    body.update(overrides)
    return body


def put_rules(client, key: str, slug: str, rules_yaml: str, expect: int | None = None):
    """Save a form's rules through the API, written as a YAML rules file; returns the response."""
    resp = client.put(f"/api/v1/forms/{slug}/rules", json=yaml.safe_load(textwrap.dedent(rules_yaml)), headers=auth(key))
    if expect is None:
        assert resp.status_code in (200, 201), resp.get_json()
    else:
        assert resp.status_code == expect, resp.get_json()
    return resp

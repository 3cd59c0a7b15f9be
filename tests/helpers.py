"""Small helpers the tests share: auth headers and a household-survey form and submission."""

import uuid


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

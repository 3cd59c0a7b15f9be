"""Receipts: an SMS to the respondent quoting their answers, queued in the same transaction as the response.

A form opts in with an `sms_receipt` task (fieldpipe/tasks): `{phone_question, template}`. The template quotes answers as
`{key}` (a choice answer by its label) and may use `{submission_id}`; an empty answer quotes as nothing.
The dedupe key `receipt:<response id>` makes the receipt once per response: a duplicate post stores no
response, an edit changes a response without creating one, so neither produces another receipt.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Iterable, Mapping

import psycopg

from fieldpipe.answers import AnswerError, normalize_phone
from fieldpipe.sms.outbox import NewMessage, enqueue

PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,62})\}")
RECEIPT_KIND = "receipt"


def _quote(value: Any, question: dict | None) -> str:
    labels = {c["value"]: c.get("label", c["value"]) for c in (question or {}).get("choices", [])}
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(labels.get(v, v) for v in value)
    if value is None:
        return ""
    return labels.get(value, str(value)) if isinstance(value, str) else str(value)


def render(template: str, answers: dict, questions: list[dict], submission_id: uuid.UUID | str) -> str:
    """Fill `{key}` placeholders; unknown names stay as written so a typo shows in the message list."""
    by_key = {q["key"]: q for q in questions}
    values = {"submission_id": str(submission_id)}

    def fill(match: re.Match) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        if key in by_key:
            return _quote(answers.get(key), by_key[key])
        return match.group(0)

    return PLACEHOLDER.sub(fill, template)


def _phone_number(answer: Any) -> str | None:
    """A phone answer is E.164 already; a text answer (XLSForm has no phone type) only when it reads as one."""
    try:
        return normalize_phone(answer) if answer else None
    except AnswerError:
        return None


def receipt_messages(organization_id: int, config: Mapping[str, str], questions: list[dict],
                     responses: Iterable[tuple[int, Any, dict]]) -> dict[int, NewMessage | None]:
    """The receipt of each (response id, submission id, answers), or None when the response has no phone
    answer to send it to; one per response id (dedupe key `receipt:<response id>`)."""
    phone_key, template = config["phone_question"], config["template"]
    messages: dict[int, NewMessage | None] = {}
    for response_id, submission_id, answers in responses:
        phone = _phone_number(answers.get(phone_key))
        if response_id in messages:
            continue
        messages[response_id] = None if not phone else NewMessage(
            dedupe_key=f"receipt:{response_id}", kind=RECEIPT_KIND, organization_id=organization_id,
            recipient=phone, body=render(template, answers, questions, submission_id), template=template,
        )
    return messages


def enqueue_receipts(conn: psycopg.Connection, messages: dict[int, NewMessage | None]) -> int:
    """Queue the receipts (one INSERT for the whole batch); return how many are new."""
    return enqueue(conn, [m for m in messages.values() if m is not None])

"""Receipts: an SMS to the respondent quoting their answers, queued in the same transaction as the response.

A form opts in with settings `sms_receipt: {phone_question, template}`. The template quotes answers as
`{key}` (a choice answer by its label) and may use `{submission_id}`; an empty answer quotes as nothing.
The dedupe key `receipt:<response id>` makes the receipt once per response: a duplicate post stores no
response, an edit changes a response without creating one, so neither produces another receipt.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Mapping, Sequence

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


def enqueue_receipts(conn: psycopg.Connection, form: dict, created: Mapping[uuid.UUID, dict],
                     submissions: Sequence[Any]) -> int:
    """Queue one receipt per newly created response of `form` that has a phone answer; return how many.

    `created` maps submission ids to the rows `responses.store` inserted; `submissions` are the checked
    submissions (with `.submission_id` and `.answers`). One INSERT for the whole batch.
    """
    receipt = (form.get("settings") or {}).get("sms_receipt")
    if not receipt or not created:
        return 0
    phone_key, template = receipt["phone_question"], receipt["template"]
    messages, seen = [], set()
    for sub in submissions:
        row = created.get(sub.submission_id)
        phone = _phone_number(sub.answers.get(phone_key))
        if row is None or not phone or row["id"] in seen:
            continue
        seen.add(row["id"])
        messages.append(NewMessage(
            dedupe_key=f"receipt:{row['id']}", kind=RECEIPT_KIND, organization_id=form["organization_id"],
            recipient=phone, body=render(template, sub.answers, form["questions"], sub.submission_id),
            template=template,
        ))
    return enqueue(conn, messages)

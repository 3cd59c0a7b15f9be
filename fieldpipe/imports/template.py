"""The blank import template of a form: a header of column keys, then two note rows (labels, and what
each column takes, choice values listed). Notes start with `#`, so a filled-in template imports as is."""

from __future__ import annotations

import csv
import io

from fieldpipe.imports.columns import ENVELOPE
from fieldpipe.imports.files import NOTE_MARK

FORMATS = ("csv", "xlsx")
MIMETYPES = {"csv": "text/csv", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
TYPE_HINTS = {
    "text": "text", "long_text": "long text", "integer": "a whole number", "decimal": "a number, e.g. 12.5",
    "phone": "a phone number in E.164, e.g. +919876543210", "date": "a date YYYY-MM-DD",
    "boolean": "yes or no", "email": "an email address",
}


def render(questions: list[dict], fmt: str) -> tuple[bytes, str]:
    rows = template_rows(questions)
    if fmt == "csv":
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        # With a byte-order mark Excel opens the file as UTF-8; the import accepts it either way.
        return text.getvalue().encode("utf-8-sig"), MIMETYPES[fmt] + "; charset=utf-8"
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "Responses"
    for row in rows:
        sheet.append(row)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for cell in [*sheet[2], *sheet[3]]:
        cell.font = Font(italic=True, color="666666")
    sheet.freeze_panes = "A4"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue(), MIMETYPES[fmt]


def template_rows(questions: list[dict]) -> list[list[str]]:
    """Header (keys), then two note rows: labels, and what each column takes (choice values listed)."""
    keys = list(ENVELOPE) + [q["key"] for q in questions]
    labels = [label for label, _ in ENVELOPE.values()] + [q["label"] for q in questions]
    hints = [hint for _, hint in ENVELOPE.values()] + [_hint(q) for q in questions]
    labels[0] = f"{NOTE_MARK} {labels[0]}"
    hints[0] = f"{NOTE_MARK} {hints[0]}"
    return [keys, labels, hints]


def _hint(question: dict) -> str:
    need = "required" if question.get("required") else "optional"
    values = " | ".join(c["value"] for c in question.get("choices", []))
    if question["type"] == "single_choice":
        return f"{need}: one of {values}"
    if question["type"] == "multi_choice":
        return f"{need}: any of {values}, separated by commas"
    return f"{need}: {TYPE_HINTS[question['type']]}"

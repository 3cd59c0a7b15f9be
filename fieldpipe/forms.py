"""Forms: versioned lists of questions, plus per-form settings used by the pipelines.

A changed list of questions is a new version; responses keep the version they answered.
Title and settings change in place, since they do not change what an answer means.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.answers import CHOICE_TYPES, QUESTION_TYPES
from fieldpipe.problems import FieldError, Problem, invalid, not_found

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FORMS = paging.Keyset("forms", str)  # ORDER BY slug
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
QUESTION_FIELDS = {"key", "label", "type", "required", "choices", "mask", "hint"}


def check_questions(questions: Any) -> tuple[list[dict], list[FieldError]]:
    if not isinstance(questions, list) or not questions:
        return [], [FieldError("questions", "required", "must be a non-empty list of questions")]
    errors: list[FieldError] = []
    clean: list[dict] = []
    seen: set[str] = set()
    for i, q in enumerate(questions):
        where = f"questions[{i}]"
        if not isinstance(q, dict):
            errors.append(FieldError(where, "type", "must be an object"))
            continue
        for extra in sorted(set(q) - QUESTION_FIELDS):
            errors.append(FieldError(f"{where}.{extra}", "unknown_field", "is not a question field"))
        key, qtype = q.get("key"), q.get("type")
        if not isinstance(key, str) or not KEY_PATTERN.match(key):
            errors.append(FieldError(f"{where}.key", "pattern", "must match ^[a-z][a-z0-9_]{0,62}$"))
        elif key in seen:
            errors.append(FieldError(f"{where}.key", "duplicate", f"key {key!r} is used twice"))
        else:
            seen.add(key)
        if qtype not in QUESTION_TYPES:
            errors.append(FieldError(f"{where}.type", "enum", f"must be one of {', '.join(QUESTION_TYPES)}"))
        label = q.get("label", key)
        if not isinstance(label, str) or not label:
            errors.append(FieldError(f"{where}.label", "type", "must be a non-empty string"))
        for flag in ("required", "mask"):
            if flag in q and not isinstance(q[flag], bool):
                errors.append(FieldError(f"{where}.{flag}", "type", "must be true or false"))
        choices = q.get("choices")
        if qtype in CHOICE_TYPES:
            if not isinstance(choices, list) or not choices:
                errors.append(FieldError(f"{where}.choices", "required", "a choice question needs choices"))
                choices = []
            else:
                choices = [c if isinstance(c, dict) else {"value": c} for c in choices]
                values = [c.get("value") for c in choices]
                if not all(isinstance(v, str) and v for v in values) or len(set(values)) != len(values):
                    errors.append(FieldError(f"{where}.choices", "invalid", "choice values must be unique non-empty strings"))
                choices = [{"value": c.get("value"), "label": c.get("label", c.get("value"))} for c in choices]
        elif choices is not None:
            errors.append(FieldError(f"{where}.choices", "not_allowed", "only choice questions have choices"))
        question = {"key": key, "label": label, "type": qtype, "required": bool(q.get("required", False))}
        if qtype in CHOICE_TYPES:
            question["choices"] = choices
        if q.get("mask"):
            question["mask"] = True
        if q.get("hint"):
            question["hint"] = q["hint"]
        clean.append(question)
    return clean, errors


def check_settings(settings: Any, questions: list[dict]) -> list[FieldError]:
    """Settings are free-form for the pipelines, but what names a question must name a real one."""
    if not isinstance(settings, dict):
        return [FieldError("settings", "type", "must be an object")]
    errors = []
    receipt = settings.get("sms_receipt")
    if receipt is not None:
        by_key = {q["key"]: q for q in questions}
        phone_q = receipt.get("phone_question") if isinstance(receipt, dict) else None
        if phone_q not in by_key or by_key[phone_q]["type"] != "phone":
            errors.append(FieldError("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form"))
        if not isinstance(receipt, dict) or not isinstance(receipt.get("template"), str) or not receipt["template"]:
            errors.append(FieldError("settings.sms_receipt.template", "required", "must be a non-empty template"))
    sheet = settings.get("sheet")
    if sheet is not None:
        if not isinstance(sheet, dict) or not isinstance(sheet.get("spreadsheet_id"), str) or not sheet["spreadsheet_id"]:
            errors.append(FieldError("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet"))
        elif not isinstance(sheet.get("worksheet", "Responses"), str) or not sheet.get("worksheet", "Responses"):
            errors.append(FieldError("settings.sheet.worksheet", "type", "must be a worksheet title"))
    return errors


def _form_body(row: dict, questions: list[dict]) -> dict:
    return {
        "slug": row["slug"],
        "title": row["title"],
        "version": row["current_version"],
        "settings": row["settings"],
        "questions": questions,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def create_form(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    slug, title = payload.get("slug"), payload.get("title")
    errors = []
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        errors.append(FieldError("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$"))
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "required", "is required"))
    questions, q_errors = check_questions(payload.get("questions"))
    settings = payload.get("settings", {})
    errors += q_errors + (check_settings(settings, questions) if not q_errors else [])
    if errors:
        raise invalid(errors)
    row = conn.execute(
        """INSERT INTO forms (organization_id, slug, title, settings) VALUES (%s, %s, %s, %s)
           ON CONFLICT (organization_id, slug) DO NOTHING
           RETURNING *""",
        (organization_id, slug, title, Jsonb(settings)),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"a form with slug {slug!r} already exists")
    conn.execute("INSERT INTO form_versions (form_id, version, questions) VALUES (%s, 1, %s)", (row["id"], Jsonb(questions)))
    return _form_body(row, questions)


def get_form_row(conn: psycopg.Connection, organization_id: int, slug: str) -> dict:
    """The form with its current version's questions; 404 for another organization's form too."""
    row = conn.execute(
        """SELECT f.*, v.id AS version_id, v.questions
             FROM forms f JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version
            WHERE f.organization_id = %s AND f.slug = %s""",
        (organization_id, slug),
    ).fetchone()
    if row is None:
        raise not_found(f"form {slug!r}")
    return row


def get_form(conn: psycopg.Connection, organization_id: int, slug: str) -> dict:
    row = get_form_row(conn, organization_id, slug)
    return _form_body(row, row["questions"])


def get_version(conn: psycopg.Connection, form_id: int, version: int) -> dict | None:
    return conn.execute(
        "SELECT id, version, questions FROM form_versions WHERE form_id = %s AND version = %s", (form_id, version)
    ).fetchone()


def list_forms(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute(
        """SELECT f.*, v.questions FROM forms f
             JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version
            WHERE f.organization_id = %s AND f.slug > %s ORDER BY f.slug LIMIT %s""",
        (organization_id, page.after[0] if page.after else "", page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["slug"],), shape=lambda r: _form_body(r, r["questions"]))


def update_form(conn: psycopg.Connection, organization_id: int, slug: str, payload: Any) -> dict:
    """Title and settings change in place; changed questions make a new version."""
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    row = conn.execute(
        """SELECT f.*, v.questions FROM forms f
             JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version
            WHERE f.organization_id = %s AND f.slug = %s FOR UPDATE OF f""",
        (organization_id, slug),
    ).fetchone()
    if row is None:
        raise not_found(f"form {slug!r}")
    errors: list[FieldError] = []
    questions = row["questions"]
    if "questions" in payload:
        questions, errors = check_questions(payload["questions"])
    title = payload.get("title", row["title"])
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "required", "must be a non-empty string"))
    settings = payload.get("settings", row["settings"])
    if not errors:
        errors += check_settings(settings, questions)
    if errors:
        raise invalid(errors)
    version = row["current_version"]
    if questions != row["questions"]:
        version += 1
        conn.execute("INSERT INTO form_versions (form_id, version, questions) VALUES (%s, %s, %s)",
                     (row["id"], version, Jsonb(questions)))
    updated = conn.execute(
        """UPDATE forms SET title = %s, settings = %s, current_version = %s, updated_at = now()
            WHERE id = %s RETURNING *""",
        (title, Jsonb(settings), version, row["id"]),
    ).fetchone()
    return _form_body(updated, questions)

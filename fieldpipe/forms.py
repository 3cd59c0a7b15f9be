"""Forms: versioned lists of questions, plus per-form settings used by the pipelines.

A changed list of questions is a new version; responses keep the version they answered.
Title and settings change in place, since they do not change what an answer means.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.answers import CHOICE_TYPES, MASK_MODES, PARTIAL_MASK_TYPES, QUESTION_TYPES
from fieldpipe.domains import TITLE_MAX_LENGTH, text_problem
from fieldpipe.problems import FieldError, Problem, invalid, not_found
from fieldpipe.xforms import XLSFORM_SUFFIXES, XForm, parse_xform, with_version, xlsform_to_xform
from fieldpipe.reporting.views import refresh_form_view
from fieldpipe.tasks.store import TASKS_AS_SETTINGS, adopt_settings, split_settings, tasks_as_settings

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
FORMS = paging.Keyset("forms", str)  # ORDER BY slug
# Every form as it is now: `f` with `v`, its current version. Readers of "the form and its questions" use this.
CURRENT_FORMS = "forms f JOIN form_versions v ON v.form_id = f.id AND v.version = f.current_version"
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Questions of an XForm keep their XML names; a question inside a group is keyed by its path, "group/name".
XFORM_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*(/[A-Za-z_][A-Za-z0-9_.-]*)*$")
QUESTION_FIELDS = {"key", "label", "type", "required", "choices", "mask", "hint", "questions"}


def check_questions(questions: Any, where_prefix: str = "questions",
                    key_pattern: re.Pattern = KEY_PATTERN) -> tuple[list[dict], list[FieldError]]:
    if not isinstance(questions, list) or not questions:
        return [], [FieldError(where_prefix, "required", "must be a non-empty list of questions")]
    errors: list[FieldError] = []
    clean: list[dict] = []
    seen: set[str] = set()
    for i, q in enumerate(questions):
        where = f"{where_prefix}[{i}]"
        if not isinstance(q, dict):
            errors.append(FieldError(where, "type", "must be an object"))
            continue
        for extra in sorted(set(q) - QUESTION_FIELDS):
            errors.append(FieldError(f"{where}.{extra}", "unknown_field", "is not a question field"))
        key, qtype = q.get("key"), q.get("type")
        if not isinstance(key, str) or not key_pattern.fullmatch(key):
            errors.append(FieldError(f"{where}.key", "pattern", f"must match {key_pattern.pattern}"))
        elif key in seen:
            errors.append(FieldError(f"{where}.key", "duplicate", f"key {key!r} is used twice"))
        else:
            seen.add(key)
        if qtype not in QUESTION_TYPES:
            errors.append(FieldError(f"{where}.type", "enum", f"must be one of {', '.join(QUESTION_TYPES)}"))
        label = q.get("label", key)
        if not isinstance(label, str) or not label:
            errors.append(FieldError(f"{where}.label", "type", "must be a non-empty string"))
        elif problem := text_problem(label, TITLE_MAX_LENGTH):
            errors.append(FieldError(f"{where}.label", *problem))
        if "required" in q and not isinstance(q["required"], bool):
            errors.append(FieldError(f"{where}.required", "type", "must be true or false"))
        mask = q.get("mask", False)
        if not (isinstance(mask, bool) or mask in MASK_MODES):
            errors.append(FieldError(f"{where}.mask", "enum", f"must be true, false or one of {', '.join(MASK_MODES)}"))
        elif mask == "partial" and qtype not in PARTIAL_MASK_TYPES:
            errors.append(FieldError(f"{where}.mask", "not_allowed", "partial masking is for phone and email questions"))
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
        inner: list[dict] = []
        if qtype == "repeat":
            inner, inner_errors = check_questions(q.get("questions"), f"{where}.questions", key_pattern)
            errors += inner_errors
        elif q.get("questions") is not None:
            errors.append(FieldError(f"{where}.questions", "not_allowed", "only a repeat has questions of its own"))
        question = {"key": key, "label": label, "type": qtype, "required": bool(q.get("required", False))}
        if qtype in CHOICE_TYPES:
            question["choices"] = choices
        if qtype == "repeat":
            question["questions"] = inner
        if mask:
            question["mask"] = mask
        if q.get("hint"):
            question["hint"] = q["hint"]
        clean.append(question)
    return clean, errors


# XLSForm has no phone type: an XForm form's receipt may go to a text question's number (checked at sending).
XFORM_PHONE_TYPES = ("phone", "text")


def check_settings(settings: Any, questions: list[dict], phone_types: tuple[str, ...] = ("phone",)) -> list[FieldError]:
    """Settings are free-form for the pipelines, but what names a question must name a real one."""
    if not isinstance(settings, dict):
        return [FieldError("settings", "type", "must be an object")]
    errors = []
    receipt = settings.get("sms_receipt")
    if receipt is not None:
        by_key = {q["key"]: q for q in questions}
        phone_q = receipt.get("phone_question") if isinstance(receipt, dict) else None
        if phone_q not in by_key or by_key[phone_q]["type"] not in phone_types:
            errors.append(FieldError("settings.sms_receipt.phone_question", "invalid", "must name a phone question of the form"))
        if not isinstance(receipt, dict) or not isinstance(receipt.get("template"), str) or not receipt["template"]:
            errors.append(FieldError("settings.sms_receipt.template", "required", "must be a non-empty template"))
    imports = settings.get("imports")
    if imports is not None and (not isinstance(imports, dict) or not isinstance(imports.get("receipts", True), bool)):
        errors.append(FieldError("settings.imports.receipts", "type", "must be true or false"))
    sheet = settings.get("sheet")
    if sheet is not None:
        if not isinstance(sheet, dict) or not isinstance(sheet.get("spreadsheet_id"), str) or not sheet["spreadsheet_id"]:
            errors.append(FieldError("settings.sheet.spreadsheet_id", "required", "must name the target spreadsheet"))
        elif not isinstance(sheet.get("worksheet", "Responses"), str) or not sheet.get("worksheet", "Responses"):
            errors.append(FieldError("settings.sheet.worksheet", "type", "must be a worksheet title"))
    return errors


def _form_body(row: dict, questions: list[dict], task_settings: dict | None = None) -> dict:
    """`task_settings`: the form's receipt and sheet tasks shown as settings (from the row when not given)."""
    body = {
        "slug": row["slug"],
        "title": row["title"],
        "version": row["current_version"],
        "settings": {**row["settings"], **(row["task_settings"] if task_settings is None else task_settings)},
        "questions": questions,
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if row.get("xform_id"):
        body["xform_id"] = row["xform_id"]
    return body


def read_upload(data: bytes, filename: str) -> XForm:
    """An uploaded XLSForm (converted by pyxform) or XForm, parsed; 422 with the converter's message."""
    name = (filename or "").lower()
    if name.endswith(XLSFORM_SUFFIXES):
        return parse_xform(xlsform_to_xform(data, filename))
    if name.endswith(".xml"):
        return parse_xform(data)
    raise invalid([FieldError("file", "file_type", "upload an XLSForm (.xlsx, .xls) or an XForm (.xml)")])


def upload_fields(fields: dict, xform: XForm) -> tuple[str, str, Any]:
    """slug, title and settings sent beside the file; the slug defaults to the XForm id, the title to its title."""
    # the XForm id in slug form; an id without a Latin letter or digit (an XLSForm named after its file, उपस्थिति.xls)
    # gets one made from its hash, so the upload needs no slug of its own
    slug = (fields.get("slug") or re.sub(r"[^a-z0-9-]+", "-", xform.form_id.lower()).strip("-")[:63]
            or "form-" + hashlib.sha256(xform.form_id.encode()).hexdigest()[:12])
    title = fields.get("title") or xform.title
    try:
        settings = json.loads(fields["settings"]) if fields.get("settings") else {}
    except ValueError:
        raise invalid([FieldError("settings", "format", "must be a JSON object")]) from None
    return slug, title, settings


def _xform_questions(xform: XForm) -> list[dict]:
    questions, errors = check_questions(xform.questions, key_pattern=XFORM_KEY_PATTERN)
    if errors:
        raise invalid(errors, "the form's questions cannot be stored")
    return questions


def create_xform_form(conn: psycopg.Connection, organization_id: int, xform: XForm, fields: dict) -> dict:
    slug, title, settings = upload_fields(fields, xform)
    questions = _xform_questions(xform)
    errors = [] if isinstance(slug, str) and SLUG_PATTERN.fullmatch(slug) else \
        [FieldError("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$")]
    errors += check_settings(settings, questions, XFORM_PHONE_TYPES)
    if errors:
        raise invalid(errors)
    settings, as_tasks = split_settings(settings)
    row = conn.execute(
        """INSERT INTO forms (organization_id, slug, title, settings, xform_id) VALUES (%s, %s, %s, %s, %s)
           ON CONFLICT DO NOTHING
           RETURNING *""",
        (organization_id, slug, title, Jsonb(settings), xform.form_id),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"a form with slug {slug!r} or XForm id {xform.form_id!r} already exists")
    adopt_settings(conn, row, as_tasks, replaced=False)
    _add_version(conn, row["id"], 1, questions, xform)
    return _form_body(row, questions, as_tasks)


def _lock_form(conn: psycopg.Connection, organization_id: int, slug: str) -> dict:
    """The form with its current version, locked until the caller's transaction ends (a form changes one
    edit at a time); 404 for another organization's form too."""
    row = conn.execute(
        f"""SELECT f.*, v.questions, v.xform, v.xform_version, {TASKS_AS_SETTINGS} AS task_settings
              FROM {CURRENT_FORMS}
             WHERE f.organization_id = %s AND f.slug = %s FOR UPDATE OF f""",
        (organization_id, slug),
    ).fetchone()
    if row is None:
        raise not_found(f"form {slug!r}")
    return row


def update_xform_form(conn: psycopg.Connection, organization_id: int, slug: str, xform: XForm, fields: dict) -> dict:
    """A new XForm for an existing form makes a new version; the XForm id must stay the same."""
    row = _lock_form(conn, organization_id, slug)
    if row["xform_id"] != xform.form_id:
        raise invalid([FieldError("file", "xform_id", f"the form's XForm id is {row['xform_id']!r}, "
                                                      f"the upload's is {xform.form_id!r}")])
    questions = _xform_questions(xform)
    title = fields.get("title") or row["title"]
    replaced = bool(fields.get("settings"))
    settings = upload_fields(fields, xform)[2] if replaced else {**row["settings"], **row["task_settings"]}
    errors = check_settings(settings, questions, XFORM_PHONE_TYPES)
    if errors:
        raise invalid(errors)
    settings, as_tasks = split_settings(settings)
    if replaced:
        adopt_settings(conn, row, as_tasks, replaced=True)
    version = row["current_version"]
    new_version = xform.version or str(version + 1)
    if with_version(xform.xml, new_version).decode() != row["xform"]:
        taken = conn.execute("SELECT 1 FROM form_versions WHERE form_id = %s AND xform_version = %s",
                             (row["id"], new_version)).fetchone()
        if taken:
            raise invalid([FieldError("file", "version", f"version {new_version!r} is already published with "
                                                         "different content; change the version in settings")])
        version += 1
        _add_version(conn, row["id"], version, questions, xform, new_version)
    updated = conn.execute(
        """UPDATE forms SET title = %s, settings = %s, current_version = %s, updated_at = now()
            WHERE id = %s RETURNING *""",
        (title, Jsonb(settings), version, row["id"]),
    ).fetchone()
    return _form_body(updated, questions, tasks_as_settings(conn, row["id"]))


def create_form(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    slug, title = payload.get("slug"), payload.get("title")
    errors = []
    if not isinstance(slug, str) or not SLUG_PATTERN.fullmatch(slug):
        errors.append(FieldError("slug", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$"))
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "required", "is required"))
    elif problem := text_problem(title, TITLE_MAX_LENGTH):
        errors.append(FieldError("title", *problem))
    questions, q_errors = check_questions(payload.get("questions"))
    settings = payload.get("settings", {})
    errors += q_errors + (check_settings(settings, questions) if not q_errors else [])
    if errors:
        raise invalid(errors)
    settings, as_tasks = split_settings(settings)
    row = conn.execute(
        """INSERT INTO forms (organization_id, slug, title, settings) VALUES (%s, %s, %s, %s)
           ON CONFLICT (organization_id, slug) DO NOTHING
           RETURNING *""",
        (organization_id, slug, title, Jsonb(settings)),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"a form with slug {slug!r} already exists")
    adopt_settings(conn, row, as_tasks, replaced=False)
    _add_version(conn, row["id"], 1, questions)
    return _form_body(row, questions, as_tasks)


def _add_version(conn: psycopg.Connection, form_id: int, version: int, questions: list[dict],
                 xform: XForm | None = None, xform_version: str | None = None) -> None:
    """A new version of the form's questions (an XForm's with its XML, stamped with its version), and the
    reporting view that shows them."""
    xml = None
    if xform is not None:
        xform_version = xform_version or xform.version or "1"
        xml = with_version(xform.xml, xform_version).decode()
    conn.execute("""INSERT INTO form_versions (form_id, version, questions, xform, xform_version)
                    VALUES (%s, %s, %s, %s, %s)""", (form_id, version, Jsonb(questions), xml, xform_version))
    refresh_form_view(conn, form_id)


def get_form_row(conn: psycopg.Connection, organization_id: int, slug: str) -> dict:
    """The form with its current version's questions; 404 for another organization's form too."""
    row = conn.execute(
        f"""SELECT f.*, v.id AS version_id, v.questions, {TASKS_AS_SETTINGS} AS task_settings FROM {CURRENT_FORMS}
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
        f"""SELECT f.*, v.questions, {TASKS_AS_SETTINGS} AS task_settings FROM {CURRENT_FORMS}
             WHERE f.organization_id = %s AND f.slug > %s ORDER BY f.slug LIMIT %s""",
        (organization_id, page.after[0] if page.after else "", page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["slug"],), shape=lambda r: _form_body(r, r["questions"]))


def update_form(conn: psycopg.Connection, organization_id: int, slug: str, payload: Any) -> dict:
    """Title and settings change in place; changed questions make a new version."""
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    row = _lock_form(conn, organization_id, slug)
    errors: list[FieldError] = []
    questions = row["questions"]
    if "questions" in payload and row["xform_id"]:
        errors.append(FieldError("questions", "xform", "this form's questions come from its XForm: upload a new "
                                                       "XLSForm or XForm as the multipart part 'file'"))
    elif "questions" in payload:
        questions, errors = check_questions(payload["questions"])
    title = payload.get("title", row["title"])
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "required", "must be a non-empty string"))
    elif problem := text_problem(title, TITLE_MAX_LENGTH):
        errors.append(FieldError("title", *problem))
    replaced = "settings" in payload
    settings = payload["settings"] if replaced else {**row["settings"], **row["task_settings"]}
    if not errors:
        errors += check_settings(settings, questions, XFORM_PHONE_TYPES if row["xform_id"] else ("phone",))
    if errors:
        raise invalid(errors)
    settings, as_tasks = split_settings(settings)
    if replaced:
        adopt_settings(conn, row, as_tasks, replaced=True)
    version = row["current_version"]
    if questions != row["questions"]:
        version += 1
        _add_version(conn, row["id"], version, questions)
    updated = conn.execute(
        """UPDATE forms SET title = %s, settings = %s, current_version = %s, updated_at = now()
            WHERE id = %s RETURNING *""",
        (title, Jsonb(settings), version, row["id"]),
    ).fetchone()
    return _form_body(updated, questions, tasks_as_settings(conn, row["id"]))

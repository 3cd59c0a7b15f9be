"""SMS templates of an organization: a kind, bodies per language, and the DLT registration.

A body quotes placeholders in braces. Which ones a template may use depends on its kind (`PLACEHOLDERS`):
the roster fills `{school}`, `{class}` and `{student}` per recipient; a result's marks come from the
assessment (`RESULT_FIELDS`); the rest (`{date}`, `{subject}`, a custom template's declared names) are the
announcement's `values`. Anything else in braces is refused, so a typo never reaches a parent.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from fieldpipe import paging
from fieldpipe.announcements.policy import SENDER_ID, policy_row
from fieldpipe.domains import text_problem
from fieldpipe.enrollment.guardians import LANGUAGE_PATTERN
from fieldpipe.problems import FieldError, Problem, invalid, not_found

KINDS = ("holiday", "ptm", "exam", "result", "homework", "custom")
ROSTER_FIELDS = ("school", "class", "student")
RESULT_FIELDS = ("assessment", "subject", "marks", "max_marks", "percent", "grade")
PLACEHOLDERS = {
    "holiday": (*ROSTER_FIELDS, "date"),
    "ptm": (*ROSTER_FIELDS, "date"),
    "exam": (*ROSTER_FIELDS, "date", "subject"),
    "homework": (*ROSTER_FIELDS, "date", "subject"),
    "result": (*ROSTER_FIELDS, *RESULT_FIELDS),
    "custom": ROSTER_FIELDS,  # and the names the template declares
}
PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,31})\}")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
DLT_TEMPLATE_ID = re.compile(r"^[0-9]{1,32}$")
MAX_BODY_LENGTH = 1000
MAX_NAME_LENGTH = 100
MAX_DECLARED = 10
TEMPLATES = paging.Keyset("sms-templates", int)
MEMBERS = ("name", "kind", "bodies", "placeholders", "dlt_template_id", "sender_id")


def used_placeholders(body: str) -> set[str]:
    return set(PLACEHOLDER.findall(body))


def allowed_placeholders(kind: str, declared: list[str]) -> set[str]:
    return set(PLACEHOLDERS.get(kind, ())) | (set(declared) if kind == "custom" else set())


def value_placeholders(template: dict) -> set[str]:
    """The placeholders of the template's bodies that the announcement's `values` must fill."""
    used = set().union(*(used_placeholders(b) for b in template["bodies"].values()))
    provided = set(ROSTER_FIELDS) | (set(RESULT_FIELDS) if template["kind"] == "result" else set())
    return used - provided


def _check(template: dict, dlt_required: bool) -> list[FieldError]:
    errors: list[FieldError] = []
    name = template.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME_LENGTH or text_problem(name):
        errors.append(FieldError("name", "required", f"must be a non-empty string of at most {MAX_NAME_LENGTH} characters"))
    kind = template.get("kind")
    if kind not in KINDS:
        errors.append(FieldError("kind", "enum", f"must be one of {', '.join(KINDS)}"))
    declared = template.get("placeholders") or []
    if not isinstance(declared, list) or len(declared) > MAX_DECLARED or not all(
            isinstance(p, str) and NAME_PATTERN.fullmatch(p) for p in declared):
        errors.append(FieldError("placeholders", "pattern", f"must be a list of at most {MAX_DECLARED} names "
                                                            "like venue or start_time"))
        declared = []
    elif declared and kind != "custom":
        errors.append(FieldError("placeholders", "custom_only", "only a custom template declares placeholders"))
    elif clash := sorted(set(declared) & set(ROSTER_FIELDS)):
        errors.append(FieldError("placeholders", "reserved", f"{', '.join(clash)} come from the roster"))
    bodies = template.get("bodies")
    if not isinstance(bodies, dict) or not bodies:
        errors.append(FieldError("bodies", "required", 'must be an object of bodies by language, e.g. {"hi": "...", "en": "..."}'))
    else:
        allowed = allowed_placeholders(kind, declared)
        for language, body in bodies.items():
            where = f"bodies.{language}"
            if not LANGUAGE_PATTERN.fullmatch(language):
                errors.append(FieldError(where, "language", "keys are two-letter ISO 639-1 codes such as hi or en"))
            elif not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY_LENGTH:
                errors.append(FieldError(where, "required", f"must be a non-empty text of at most {MAX_BODY_LENGTH} characters"))
            elif problem := text_problem(body):
                errors.append(FieldError(where, *problem))
            elif kind in KINDS:
                unknown = sorted(used_placeholders(body) - allowed)
                stray = PLACEHOLDER.sub("", body)
                if unknown:
                    errors.append(FieldError(where, "unknown_placeholder",
                                             f"a {kind} template cannot fill {', '.join('{' + u + '}' for u in unknown)}; "
                                             f"it provides {', '.join('{' + a + '}' for a in sorted(allowed))}"))
                elif "{" in stray or "}" in stray:
                    errors.append(FieldError(where, "unknown_placeholder",
                                             "braces only enclose placeholder names such as {school}"))
    for member, pattern, what in (("dlt_template_id", DLT_TEMPLATE_ID, "the digits of the DLT template id"),
                                  ("sender_id", SENDER_ID, "3 to 11 letters or digits (the registered header)")):
        value = template.get(member)
        if value is None:
            if dlt_required:
                errors.append(FieldError(member, "required", f"the organization's SMS policy requires {what}"))
        elif not isinstance(value, str) or not pattern.fullmatch(value):
            errors.append(FieldError(member, "pattern", f"must be {what}"))
    return errors


def template_body(row: dict) -> dict:
    return {"id": row["id"], "name": row["name"], "kind": row["kind"], "bodies": row["bodies"],
            "placeholders": row["placeholders"], "dlt_template_id": row["dlt_template_id"],
            "sender_id": row["sender_id"], "created_at": row["created_at"], "updated_at": row["updated_at"]}


def _payload(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    unknown = sorted(set(payload) - set(MEMBERS))
    if unknown:
        raise invalid([FieldError(name, "unknown", "no such member") for name in unknown])
    return payload


def _store(conn: psycopg.Connection, organization_id: int, template: dict, template_id: int | None) -> dict:
    errors = _check(template, policy_row(conn, organization_id)["dlt_required"])
    if errors:
        raise invalid(errors)
    values = {"org": organization_id, "id": template_id, "name": template["name"].strip(), "kind": template["kind"],
              "bodies": psycopg.types.json.Jsonb(template["bodies"]), "placeholders": template.get("placeholders") or [],
              "dlt": template.get("dlt_template_id"), "sender": template.get("sender_id")}
    try:
        with conn.transaction():
            if template_id is None:
                row = conn.execute(
                    """INSERT INTO sms_templates (organization_id, name, kind, bodies, placeholders, dlt_template_id, sender_id)
                       VALUES (%(org)s, %(name)s, %(kind)s, %(bodies)s, %(placeholders)s, %(dlt)s, %(sender)s)
                       RETURNING *""", values).fetchone()
            else:
                row = conn.execute(
                    """UPDATE sms_templates SET name = %(name)s, kind = %(kind)s, bodies = %(bodies)s,
                              placeholders = %(placeholders)s, dlt_template_id = %(dlt)s, sender_id = %(sender)s,
                              updated_at = now()
                        WHERE id = %(id)s AND organization_id = %(org)s RETURNING *""", values).fetchone()
    except psycopg.errors.UniqueViolation:
        raise Problem("already-exists", f"a template named {values['name']!r} already exists") from None
    return template_body(row)


def create_template(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    return _store(conn, organization_id, _payload(payload), None)


def template_row(conn: psycopg.Connection, organization_id: int, template_id: int) -> dict:
    row = conn.execute("SELECT * FROM sms_templates WHERE id = %s AND organization_id = %s",
                       (template_id, organization_id)).fetchone()
    if row is None:
        raise not_found(f"template {template_id}")
    return row


def update_template(conn: psycopg.Connection, organization_id: int, template_id: int, patch: Any) -> dict:
    """PATCH: members sent replace the stored ones; the whole template is checked again."""
    row = template_row(conn, organization_id, template_id)
    merged = {**{m: row[m] for m in MEMBERS}, **_payload(patch)}
    return _store(conn, organization_id, merged, template_id)


def list_templates(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute(
        """SELECT * FROM sms_templates WHERE organization_id = %s AND id > %s ORDER BY id LIMIT %s""",
        (organization_id, page.after[0] if page.after else 0, page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=template_body)

"""Announcements: made (checked, counted, frozen), approved by a second admin when large, cancelled, tracked.

Who may do what (keys have the roles admin and collector, fieldpipe/orgs.py):
- a **teacher key** is a collector key: teachers use the app with the key their organization gave them. It may
  announce to classes or students (`class_ids`, `student_ids`); a school, block or district needs an admin.
- any key of the organization reads an announcement and its progress; the recipients (with phone numbers)
  are for admins.
- above the policy's `approval_threshold` messages an announcement waits (`awaiting_approval`) until an admin
  key other than the one that made it approves it; the creator's own key is refused (403 `same-approver`).
- the creator's key or any admin key cancels.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.announcements import fanout, templates
from fieldpipe.announcements.policy import policy_row
from fieldpipe.assessments import roster
from fieldpipe.domains import parse_row_id, text_problem
from fieldpipe.orgs import Caller
from fieldpipe.problems import FieldError, Problem, invalid, not_found
from fieldpipe.responses import parse_timestamp

AUDIENCE_KINDS = ("class_ids", "student_ids", "school", "block", "district")
TEACHER_AUDIENCES = ("class_ids", "student_ids")
MAX_IDS = 10_000
MAX_VALUE_LENGTH = 200
SEND_AT_GRACE = dt.timedelta(minutes=1)  # a send time this close to now counts as now (clock skew)
SEND_AT_HORIZON = dt.timedelta(days=366)
RECIPIENTS = paging.Keyset("announcement-recipients", str)
ANNOUNCEMENTS = paging.Keyset("announcements", int)
RECIPIENT_STATUSES = ("skipped", "queued", "sent", "failed", "unknown", "cancelled")


def _ids(value: Any, field: str, errors: list[FieldError]) -> list[int]:
    ids = [parse_row_id(v) if not isinstance(v, str) else None for v in value] if isinstance(value, list) else [None]
    if not value or None in ids or len(ids) > MAX_IDS:
        errors.append(FieldError(field, "type", f"must be a non-empty list of at most {MAX_IDS} ids"))
        return []
    return sorted(set(ids))


def check_audience(conn: psycopg.Connection, caller: Caller, audience: Any) -> dict:
    """The audience in its stored form; 422 for a bad or unknown one, 403 when a teacher key reaches too far."""
    if not isinstance(audience, dict) or not audience:
        raise invalid([FieldError("audience", "required", "must be one of " + ", ".join(
            f'{{"{k}": ...}}' for k in AUDIENCE_KINDS))])
    keys = set(audience)
    if not (len(keys) == 1 and keys <= set(AUDIENCE_KINDS)) and keys != {"block", "district"}:
        raise invalid([FieldError("audience", "one_of", "name exactly one of " + ", ".join(AUDIENCE_KINDS)
                                  + " (a block may come with its district)")])
    kind = next(k for k in AUDIENCE_KINDS if k in keys)
    if not caller.is_admin and kind not in TEACHER_AUDIENCES:
        raise Problem("forbidden", f"a teacher (collector) key announces to class_ids or student_ids; {kind} needs an admin key")
    errors: list[FieldError] = []
    org = caller.organization_id
    if kind in TEACHER_AUDIENCES:
        ids = _ids(audience[kind], f"audience.{kind}", errors)
        if ids:
            table = "classes c JOIN schools sc ON sc.id = c.school_id WHERE c.id" if kind == "class_ids" else (
                "students st JOIN classes c ON c.id = st.class_id JOIN schools sc ON sc.id = c.school_id "
                f"WHERE {fanout.ACTIVE_STUDENT} AND st.id")
            found = {r["id"] for r in conn.execute(
                f"SELECT {'c' if kind == 'class_ids' else 'st'}.id FROM {table} = ANY(%s) AND sc.organization_id = %s",
                (ids, org))}
            if missing := [i for i in ids if i not in found]:
                errors.append(FieldError(f"audience.{kind}", "unknown",
                                         f"no such {'class' if kind == 'class_ids' else 'enrolled student'}: "
                                         + ", ".join(map(str, missing[:20]))))
        stored = {kind: ids}
    elif kind == "school":
        udise = audience["school"]
        if not isinstance(udise, str) or not roster.UDISE_PATTERN.fullmatch(udise):
            errors.append(FieldError("audience.school", "pattern", "must be the school's 11-digit UDISE code"))
        elif conn.execute("SELECT 1 FROM schools WHERE organization_id = %s AND udise = %s", (org, udise)).fetchone() is None:
            errors.append(FieldError("audience.school", "unknown", f"no school with UDISE code {udise}"))
        stored = {"school": udise}
    else:
        stored = {}
        for name in sorted(keys):
            value = audience[name]
            if not isinstance(value, str) or not value.strip() or text_problem(value, 200):
                errors.append(FieldError(f"audience.{name}", "required", "must be a non-empty name"))
            stored[name] = value.strip() if isinstance(value, str) else value
    if errors:
        raise invalid(errors)
    return stored


def _check_values(conn: psycopg.Connection, organization_id: int, template: dict, values: Any) -> dict:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise invalid([FieldError("values", "type", "must be an object of placeholder values")])
    wanted = templates.value_placeholders(template)
    allowed = wanted | ({"assessment_id"} if template["kind"] == "result" else set())
    errors = [FieldError(f"values.{name}", "unknown", f"the template has no {{{name}}}")
              for name in sorted(set(values) - allowed)]
    errors += [FieldError(f"values.{name}", "required", f"the template quotes {{{name}}}")
               for name in sorted(wanted - set(values))]
    clean: dict[str, Any] = {}
    for name in sorted(wanted & set(values)):
        value = values[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_VALUE_LENGTH or text_problem(value):
            errors.append(FieldError(f"values.{name}", "required", f"must be a non-empty text of at most {MAX_VALUE_LENGTH} characters"))
        elif "{" in value or "}" in value:
            errors.append(FieldError(f"values.{name}", "character", "must not contain braces"))
        else:
            clean[name] = value.strip()
    if template["kind"] == "result":
        assessment_id = parse_row_id(values.get("assessment_id")) if not isinstance(values.get("assessment_id"), str) else None
        assessment = assessment_id and conn.execute(
            """SELECT a.id, a.evaluation, a.submission_level,
                      EXISTS (SELECT 1 FROM assessment_grades g WHERE g.assessment_id = a.id AND g.min_percent IS NOT NULL) AS graded
                 FROM assessments a WHERE a.id = %s AND a.organization_id = %s""",
            (assessment_id, organization_id)).fetchone()
        if not assessment:
            errors.append(FieldError("values.assessment_id", "unknown", "must name an assessment of the organization"))
        else:
            used = set().union(*(templates.used_placeholders(b) for b in template["bodies"].values()))
            if assessment["submission_level"] == "class":
                errors.append(FieldError("values.assessment_id", "level", "class-level results have no marks per child"))
            elif assessment["evaluation"] == "Grade" and used & {"marks", "max_marks", "percent"}:
                errors.append(FieldError("values.assessment_id", "evaluation",
                                         "a graded assessment has no marks: quote {grade} only"))
            elif assessment["evaluation"] == "Marks" and "grade" in used and not assessment["graded"]:
                errors.append(FieldError("values.assessment_id", "grade_scale",
                                         "the assessment has no grade scale to quote {grade} from"))
            clean["assessment_id"] = assessment_id
    if errors:
        raise invalid(errors)
    return clean


def _send_at(value: Any) -> dt.datetime:
    now = dt.datetime.now(dt.timezone.utc)
    if value is None:
        return now
    errors: list[FieldError] = []
    when = parse_timestamp(value, "send_at", errors)
    if when is not None and when < now - SEND_AT_GRACE:
        errors.append(FieldError("send_at", "past", "is in the past; leave it out to send now"))
    elif when is not None and when > now + SEND_AT_HORIZON:
        errors.append(FieldError("send_at", "range", "must be within a year"))
    if errors:
        raise invalid(errors)
    return max(when, now)


def _fill(body: str, values: dict) -> str:
    for name, value in values.items():
        if name != "assessment_id":
            body = body.replace("{" + name + "}", value)
    return body


def create_announcement(conn: psycopg.Connection, caller: Caller, payload: Any) -> dict:
    """Check, count and store an announcement; nothing is sent until the `announcements` DAG fans it out."""
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    if unknown := sorted(set(payload) - {"template_id", "values", "audience", "send_at"}):
        raise invalid([FieldError(name, "unknown", "no such member") for name in unknown])
    org = caller.organization_id
    template_id = payload.get("template_id")
    template = None
    if not isinstance(template_id, str) and parse_row_id(template_id) is not None:
        template = conn.execute("SELECT * FROM sms_templates WHERE id = %s AND organization_id = %s",
                                (template_id, org)).fetchone()
    if template is None:
        raise invalid([FieldError("template_id", "unknown", "must name one of the organization's SMS templates")])
    values = _check_values(conn, org, template, payload.get("values"))
    audience = check_audience(conn, caller, payload.get("audience"))
    send_at = _send_at(payload.get("send_at"))
    policy = policy_row(conn, org)
    if policy["dlt_required"] and not (template["dlt_template_id"] and template["sender_id"]):
        raise invalid([FieldError("template_id", "dlt_required", "the organization's SMS policy requires the "
                                                                  "template's DLT template id and sender id")])
    counts = fanout.count_recipients(conn, org, template["kind"], audience, values)
    to_send = counts["resolved"] - counts["skipped"]
    if to_send == 0:
        raise invalid([FieldError("audience", "empty", f"resolves to no one who can be messaged: "
                                                       f"{counts['students']} students, {counts['skipped']} skipped "
                                                       "(opted out, no guardian phone or no result)")])
    bodies = {language: _fill(body, values) for language, body in template["bodies"].items()}
    default_language = next((lang for lang in ("hi", "en") if lang in bodies), sorted(bodies)[0])
    status = "awaiting_approval" if to_send > policy["approval_threshold"] else "scheduled"
    row = conn.execute(
        """INSERT INTO announcements (organization_id, template_id, kind, bodies, default_language, dlt_template_id,
                                      sender_id, "values", audience, send_at, status, expected_recipients, created_by)
           VALUES (%(org)s, %(template)s, %(kind)s, %(bodies)s, %(language)s, %(dlt)s, %(sender)s, %(values)s,
                   %(audience)s, %(send_at)s, %(status)s, %(expected)s, %(key)s)
           RETURNING id""",
        {"org": org, "template": template["id"], "kind": template["kind"], "bodies": Jsonb(bodies),
         "language": default_language, "dlt": template["dlt_template_id"],
         "sender": template["sender_id"] or policy["sender_id"], "values": Jsonb(values), "audience": Jsonb(audience),
         "send_at": send_at, "status": status, "expected": counts["resolved"], "key": caller.key_id},
    ).fetchone()
    return get_announcement(conn, org, row["id"])


PROGRESS_SQL = """
SELECT count(*) AS resolved,
       count(*) FILTER (WHERE r.status = 'skipped') AS skipped,
       count(*) FILTER (WHERE m.status IN ('queued', 'sending')) AS queued,
       count(*) FILTER (WHERE m.status = 'sent') AS sent,
       count(*) FILTER (WHERE m.status = 'failed') AS failed,
       count(*) FILTER (WHERE m.status = 'unknown') AS unknown,
       count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled
  FROM announcement_recipients r LEFT JOIN sms_messages m ON m.dedupe_key = r.dedupe_key
 WHERE r.announcement_id = %s
"""


def announcement_row(conn: psycopg.Connection, organization_id: int, announcement_id: int, lock: bool = False) -> dict:
    row = conn.execute(
        "SELECT * FROM announcements WHERE id = %s AND organization_id = %s" + (" FOR UPDATE" if lock else ""),
        (announcement_id, organization_id)).fetchone()
    if row is None:
        raise not_found(f"announcement {announcement_id}")
    return row


def announcement_body(row: dict, progress: dict) -> dict:
    status = row["status"]
    if status == "sending" and progress["queued"] == 0:
        status = "completed"
    done = sum(progress[k] for k in ("sent", "delivered", "failed", "unknown", "skipped", "cancelled"))
    percent = round(100 * done / progress["resolved"], 1) if progress["resolved"] else 0.0
    return {"id": row["id"], "template_id": row["template_id"], "kind": row["kind"], "status": status,
            "send_at": row["send_at"], "audience": row["audience"], "values": row["values"],
            "bodies": row["bodies"], "recipients": row["expected_recipients"],
            "progress": {**progress, "percent": percent}, "created_by": row["created_by"],
            "created_at": row["created_at"], "approved_by": row["approved_by"], "approved_at": row["approved_at"],
            "cancelled_at": row["cancelled_at"], "fanned_out_at": row["fanned_out_at"]}


def get_announcement(conn: psycopg.Connection, organization_id: int, announcement_id: int) -> dict:
    row = announcement_row(conn, organization_id, announcement_id)
    progress = dict(conn.execute(PROGRESS_SQL, (announcement_id,)).fetchone())
    progress["delivered"] = 0  # no configured provider reports delivery (docs/announcements.md)
    return announcement_body(row, progress)


def list_announcements(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    ids = [r["id"] for r in conn.execute(
        "SELECT id FROM announcements WHERE organization_id = %s AND id > %s ORDER BY id LIMIT %s",
        (organization_id, page.after[0] if page.after else 0, page.fetch))]
    return page.answer(ids, key=lambda i: (i,), shape=lambda i: get_announcement(conn, organization_id, i))


def approve(conn: psycopg.Connection, caller: Caller, announcement_id: int) -> dict:
    row = announcement_row(conn, caller.organization_id, announcement_id, lock=True)
    if row["status"] != "awaiting_approval":
        raise Problem("announcement-state", f"announcement {announcement_id} is {row['status']}, not awaiting approval")
    if row["created_by"] == caller.key_id:
        raise Problem("same-approver", "an admin key other than the one that made the announcement must approve it")
    conn.execute("""UPDATE announcements SET status = 'scheduled', approved_by = %s, approved_at = now(),
                           send_at = greatest(send_at, now()) WHERE id = %s""", (caller.key_id, announcement_id))
    return get_announcement(conn, caller.organization_id, announcement_id)


def cancel(conn: psycopg.Connection, caller: Caller, announcement_id: int) -> dict:
    """Stop what is not yet sent: a fan-out in progress finishes first (row lock), then its queued messages are
    cancelled. Cancelling a cancelled announcement changes nothing; a completed one is 409."""
    row = announcement_row(conn, caller.organization_id, announcement_id, lock=True)
    if not caller.is_admin and row["created_by"] != caller.key_id:
        raise Problem("forbidden", "only the key that made the announcement or an admin key may cancel it")
    if row["status"] == "cancelled":
        return get_announcement(conn, caller.organization_id, announcement_id)
    cancelled = conn.execute(
        """UPDATE sms_messages m SET status = 'cancelled', last_error = 'the announcement was cancelled',
                  updated_at = clock_timestamp()
             FROM announcement_recipients r
            WHERE r.announcement_id = %s AND m.dedupe_key = r.dedupe_key AND m.status = 'queued'""",
        (announcement_id,)).rowcount
    if row["status"] == "sending" and cancelled == 0:
        body = get_announcement(conn, caller.organization_id, announcement_id)
        if body["status"] == "completed":
            raise Problem("announcement-state", f"announcement {announcement_id} has completed; nothing is left to stop")
    conn.execute("UPDATE announcements SET status = 'cancelled', cancelled_by = %s, cancelled_at = now() WHERE id = %s",
                 (caller.key_id, announcement_id))
    return get_announcement(conn, caller.organization_id, announcement_id)


def recipient_body(row: dict) -> dict:
    status = row["status"] if row["status"] == "skipped" else (
        "queued" if row["message_status"] in ("queued", "sending") else row["message_status"] or "queued")
    return {"recipient": row["recipient_key"], "phone": row["phone"], "student_ids": row["student_ids"],
            "language": row["language"], "status": status,
            "reason": row["reason"] if row["status"] == "skipped" else row["last_error"],
            "message_id": row["message_id"], "attempts": row["attempts"] or 0}


def list_recipients(conn: psycopg.Connection, organization_id: int, announcement_id: int, page: paging.Page,
                    status: str | None = None) -> dict:
    """A page of the announcement's recipients by key, each with its message's state and reason."""
    if status is not None and status not in RECIPIENT_STATUSES:
        raise invalid([FieldError("status", "enum", f"must be one of {', '.join(RECIPIENT_STATUSES)}")])
    announcement_row(conn, organization_id, announcement_id)
    message_statuses = {"queued": ["queued", "sending"]}.get(status, [status])
    rows = conn.execute(
        """SELECT r.*, m.id AS message_id, m.status AS message_status, m.last_error, m.attempts
             FROM announcement_recipients r LEFT JOIN sms_messages m ON m.dedupe_key = r.dedupe_key
            WHERE r.announcement_id = %(id)s AND r.recipient_key > %(after)s
              AND (%(status)s::text IS NULL
                   OR (%(status)s = 'skipped' AND r.status = 'skipped')
                   OR (r.status = 'pending' AND m.status = ANY(%(message_statuses)s)))
            ORDER BY r.recipient_key LIMIT %(limit)s""",
        {"id": announcement_id, "after": page.after[0] if page.after else "", "status": status,
         "message_statuses": message_statuses, "limit": page.fetch}).fetchall()
    return page.answer(rows, key=lambda r: (r["recipient_key"],), shape=recipient_body)

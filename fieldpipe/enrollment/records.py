"""Enrollment, leaving with a school leaving certificate (SLC), verification and transfers.

- A new student is enrolled into a class unless a student with the same name (case and spacing aside), date
  of birth and a guardian phone in common is already registered in the organization (the state): then 409
  with that student.
- Leaving ends the current enrollment period on the leaving date and issues a signed SLC whose PDF is kept in
  object storage.
- A transfer within the state presents the SLC's QR payload: the same student gets a new enrollment period in
  the new class; the certificate is then used and never accepted again.
- A transfer from another state creates the student with the other state's document details, waiting for review.

Every action writes an audit row with the API key that did it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import audit, objectstore, paging
from fieldpipe.assessments.roster import get_class_row, guardians_json, student_body
from fieldpipe.domains import parse_row_id
from fieldpipe.enrollment import certificate, signing
from fieldpipe.enrollment.guardians import guardians_of, parse_guardians, store_guardians
from fieldpipe.problems import FieldError, Problem, invalid, not_found

GENDERS = ("female", "male", "other")
DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_TEXT = 200
NEW_STUDENT_FIELDS = {"class_id", "name", "date_of_birth", "gender", "guardians", "admission_number",
                      "previous_school", "roll_number", "admitted_on", "out_of_state"}
TRANSFER_FIELDS = {"class_id", "slc_qr_payload", "roll_number", "admission_number", "admitted_on"}
OUT_OF_STATE_FIELDS = {"state", "school_name", "certificate_number", "issued_on", "document_url"}
REVIEW_DECISIONS = ("accepted", "rejected")
TRANSFERS = paging.Keyset("transfers", int)  # ORDER BY id
# A date is "in the future" only once it has begun nowhere on Earth (UTC+14), so a school's today is accepted.
LATEST_OFFSET = dt.timedelta(hours=14)


def _today_somewhere() -> dt.date:
    return (dt.datetime.now(dt.timezone.utc) + LATEST_OFFSET).date()


def _object(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    return payload


def _unknown_fields(payload: dict, allowed: set[str], prefix: str = "") -> list[FieldError]:
    return [FieldError(prefix + name, "unknown", f"is not a field here (allowed: {', '.join(sorted(allowed))})")
            for name in sorted(set(payload) - allowed)]


def _text(payload: dict, name: str, errors: list[FieldError], required: bool = True, prefix: str = "") -> str | None:
    value = payload.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_TEXT:
        blank = value is None or (isinstance(value, str) and not value.strip())
        errors.append(FieldError(prefix + name, "required" if blank else "type",
                                 f"must be a non-empty string of at most {MAX_TEXT} characters"))
        return None
    return value.strip()


def _date(payload: dict, name: str, errors: list[FieldError], required: bool = True, prefix: str = "",
          default: dt.date | None = None) -> dt.date | None:
    value = payload.get(name)
    if value is None and not required:
        return default
    try:
        if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
            raise ValueError
        day = dt.date.fromisoformat(value)
    except ValueError:
        errors.append(FieldError(prefix + name, "date", "must be a date YYYY-MM-DD"))
        return None
    if day > _today_somewhere():
        errors.append(FieldError(prefix + name, "future", "must not be in the future"))
        return None
    return day


def _roll_number(payload: dict, errors: list[FieldError]) -> str | None:
    roll = payload.get("roll_number")
    if isinstance(roll, int) and not isinstance(roll, bool):
        roll = str(roll)
    if roll is not None and (not isinstance(roll, str) or not roll.strip() or len(roll) > 20):
        errors.append(FieldError("roll_number", "type", "must be a non-empty string of at most 20 characters"))
        return None
    return roll.strip() if roll else None


def _class(conn: psycopg.Connection, organization_id: int, payload: dict, errors: list[FieldError]) -> dict | None:
    try:
        return get_class_row(conn, organization_id, payload.get("class_id"))
    except Problem:
        errors.append(FieldError("class_id", "unknown", "is not a class of this organization"))
        return None


# --- reading ---------------------------------------------------------------------------------------------------

_STUDENT = f"""SELECT st.*, c.grade, c.section, c.school_id, sc.udise, sc.name AS school_name, sc.district, sc.block,
                      sc.organization_id, {guardians_json('st')}
                 FROM students st JOIN classes c ON c.id = st.class_id JOIN schools sc ON sc.id = c.school_id"""


def _student_row(conn: psycopg.Connection, organization_id: int, student_id: Any, lock: bool = False) -> dict:
    row = None
    if (row_id := parse_row_id(student_id)) is not None:
        row = conn.execute(
            _STUDENT + " WHERE st.id = %s AND sc.organization_id = %s AND st.deleted_at IS NULL"
            + (" FOR UPDATE OF st" if lock else ""), (row_id, organization_id)).fetchone()
    if row is None:
        raise not_found(f"student {student_id!r}")
    return row


def _history(conn: psycopg.Connection, student_id: int) -> dict:
    """A student's enrollment periods and certificates, oldest first."""
    return {
        "enrollments": [{
            "school": e["udise"], "school_name": e["school_name"], "class_id": e["class_id"], "grade": e["grade"],
            "section": e["section"], "from": e["started_on"], "to": e["ended_on"], "started_by": e["started_by"],
        } for e in conn.execute(
            """SELECT e.*, sc.udise, sc.name AS school_name, c.grade, c.section FROM enrollments e
                 JOIN classes c ON c.id = e.class_id JOIN schools sc ON sc.id = e.school_id
                WHERE e.student_id = %s ORDER BY e.started_on NULLS FIRST, e.id""", (student_id,))],
        "certificates": [_certificate_summary(c) for c in conn.execute(
            "SELECT * FROM school_leaving_certificates WHERE student_id = %s ORDER BY issued_at", (student_id,))],
    }


def get_student(conn: psycopg.Connection, organization_id: int, student_id: Any) -> dict:
    row = _student_row(conn, organization_id, student_id)
    return student_body(row, _history(conn, row["id"]))


def _certificate_summary(row: dict) -> dict:
    return {"id": str(row["id"]), "leaving_date": row["leaving_date"], "reason": row["reason"], "kid": row["kid"],
            "issued_at": row["issued_at"], "revoked_at": row["revoked_at"], "used_at": row["used_at"],
            "pdf_url": pdf_path(row["id"])}


def pdf_path(certificate_id: Any) -> str:
    return f"/api/v1/slc/{certificate_id}/pdf"


# --- enrolling -------------------------------------------------------------------------------------------------

def enroll(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, payload: Any) -> dict:
    """A new student, a transfer within the state (`slc_qr_payload`) or from another state (`out_of_state`)."""
    payload = _object(payload)
    if "slc_qr_payload" in payload:
        return _transfer_in_state(conn, organization_id, api_key_id, payload)
    return _admit(conn, organization_id, api_key_id, payload)


def _parse_out_of_state(value: Any, errors: list[FieldError]) -> dict | None:
    if not isinstance(value, dict):
        errors.append(FieldError("out_of_state", "type", "must be an object with the other state's document details"))
        return None
    errors += _unknown_fields(value, OUT_OF_STATE_FIELDS, "out_of_state.")
    found = len(errors)
    document = {name: _text(value, name, errors, prefix="out_of_state.")
                for name in ("state", "school_name", "certificate_number")}
    issued_on = _date(value, "issued_on", errors, prefix="out_of_state.")
    url = value.get("document_url")
    if url is not None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 2000:
            errors.append(FieldError("out_of_state.document_url", "url", "must be an http(s) URL of the document"))
    if len(errors) > found:
        return None
    return {**document, "issued_on": issued_on.isoformat(), "document_url": url}


def _admit(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, payload: dict) -> dict:
    errors = _unknown_fields(payload, NEW_STUDENT_FIELDS)
    klass = _class(conn, organization_id, payload, errors)
    name = _text(payload, "name", errors)
    birth = _date(payload, "date_of_birth", errors)
    gender = payload.get("gender")
    if gender not in GENDERS:
        errors.append(FieldError("gender", "enum", f"must be one of {', '.join(GENDERS)}"))
    guardians, guardian_errors = parse_guardians(payload.get("guardians"))
    errors += guardian_errors
    admission_number = _text(payload, "admission_number", errors, required=False)
    previous_school = _text(payload, "previous_school", errors, required=False)
    roll = _roll_number(payload, errors)
    admitted_on = _date(payload, "admitted_on", errors, required=False, default=dt.date.today())
    document = None
    if "out_of_state" in payload:
        document = _parse_out_of_state(payload["out_of_state"], errors)
    if birth and admitted_on and admitted_on < birth:
        errors.append(FieldError("admitted_on", "before_birth", "must not be before the date of birth"))
    if errors:
        raise invalid(errors)

    phones = [g["phone"] for g in guardians if g["phone"]]
    # Serialise enrollments of namesakes born the same day, so two identical registrations cannot both pass.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (f"student:{birth}", organization_id))
    existing = conn.execute(
        _STUDENT + """ WHERE sc.organization_id = %(org)s AND st.deleted_at IS NULL AND st.date_of_birth = %(birth)s
                         AND lower(regexp_replace(btrim(st.name), '\\s+', ' ', 'g'))
                             = lower(regexp_replace(btrim(%(name)s), '\\s+', ' ', 'g'))
                         AND (st.parent_phone = ANY(%(phones)s)
                              OR EXISTS (SELECT 1 FROM guardians g WHERE g.student_id = st.id AND g.phone = ANY(%(phones)s)))
                       ORDER BY st.id LIMIT 1""",
        {"org": organization_id, "birth": birth, "name": name, "phones": phones}).fetchone()
    if existing is not None:
        raise Problem("duplicate-student",
                      f"student {existing['id']} has the same name, date of birth and a guardian phone",
                      extra={"existing_student": student_body(existing)})

    roll = _free_roll_number(conn, klass, roll)
    student = conn.execute(
        """INSERT INTO students (class_id, roll_number, name, parent_phone, date_of_birth, gender, admission_number,
                                 previous_school)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (klass["id"], roll, name, phones[0] if phones else None, birth, gender, admission_number,
         previous_school or (document and f"{document['school_name']}, {document['state']}")),
    ).fetchone()
    store_guardians(conn, student["id"], guardians)
    enrollment_id = _open_enrollment(conn, student["id"], klass, admitted_on, "out_of_state" if document else "admission")
    details = {"class_id": klass["id"], "school": klass["udise"], "enrollment_id": enrollment_id}
    if document:
        review = conn.execute(
            """INSERT INTO out_of_state_transfers (organization_id, student_id, enrollment_id, document)
               VALUES (%s, %s, %s, %s) RETURNING id""",
            (organization_id, student["id"], enrollment_id, Jsonb(document))).fetchone()
        details["transfer_review_id"] = review["id"]
    audit.record(conn, organization_id, api_key_id, "student.transferred_from_other_state" if document else "student.enrolled",
                 f"student:{student['id']}", details)
    body = get_student(conn, organization_id, student["id"])
    if document:
        body["transfer_review"] = {"id": details["transfer_review_id"], "status": "pending", "document": document}
    return body


def _free_roll_number(conn: psycopg.Connection, klass: dict, roll: str | None) -> str:
    """The requested roll number if free in the class, else 409; without one, the next number after the highest."""
    conn.execute("SELECT 1 FROM classes WHERE id = %s FOR UPDATE", (klass["id"],))  # one roll number at a time
    if roll is not None:
        taken = conn.execute("SELECT 1 FROM students WHERE class_id = %s AND roll_number = %s",
                             (klass["id"], roll)).fetchone()
        if taken:
            raise Problem("already-exists", f"roll number {roll!r} is taken in class {klass['id']}")
        return roll
    return str(conn.execute(
        """SELECT coalesce(max(roll_number::bigint) FILTER (WHERE roll_number ~ '^[0-9]{1,15}$'), 0) + 1 AS next
             FROM students WHERE class_id = %s""", (klass["id"],)).fetchone()["next"])


def _open_enrollment(conn: psycopg.Connection, student_id: int, klass: dict, started_on: dt.date, started_by: str) -> int:
    return conn.execute(
        """INSERT INTO enrollments (student_id, school_id, class_id, started_on, started_by)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (student_id, klass["school_id"], klass["id"], started_on, started_by)).fetchone()["id"]


# --- leaving ---------------------------------------------------------------------------------------------------

def leave(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, student_id: Any, payload: Any) -> dict:
    """End the student's enrollment on the leaving date and issue the signed certificate (PDF in object storage)."""
    payload = _object(payload)
    student = _student_row(conn, organization_id, student_id, lock=True)
    errors = _unknown_fields(payload, {"reason", "date"})
    reason = _text(payload, "reason", errors)
    leaving_date = _date(payload, "date", errors)
    current = conn.execute("SELECT * FROM enrollments WHERE student_id = %s AND ended_on IS NULL",
                           (student["id"],)).fetchone()
    if current is None:
        raise Problem("student-not-enrolled", f"student {student['id']} left on {student['left_on']} and is not enrolled")
    if leaving_date and current["started_on"] and leaving_date < current["started_on"]:
        errors.append(FieldError("date", "before_admission",
                                 f"must not be before the student's admission on {current['started_on']}"))
    if errors:
        raise invalid(errors)

    conn.execute("UPDATE enrollments SET ended_on = %s WHERE id = %s", (leaving_date, current["id"]))
    conn.execute("UPDATE students SET left_on = %s, updated_at = now() WHERE id = %s", (leaving_date, student["id"]))
    certificate_id = uuid.uuid4()
    fields = {"c": str(certificate_id), "s": student["id"], "n": student["name"],
              "b": student["date_of_birth"] and student["date_of_birth"].isoformat(), "u": student["udise"],
              "g": f"{student['grade']}{student['section']}", "l": leaving_date.isoformat()}
    kid, message, signature = signing.sign(conn, organization_id, lambda key_id: certificate.message_for({**fields, "k": key_id}))
    qr_payload = f"{message.decode()}.{signing.b64url(signature)}"
    guardians = guardians_of(conn, [student["id"]])[student["id"]]
    pdf = certificate.render_pdf({
        "id": str(certificate_id), "kid": kid, "school": student["school_name"], "udise": student["udise"],
        "place": f"{student['district']} / {student['block']}", "name": student["name"],
        "date_of_birth": student["date_of_birth"], "gender": student["gender"],
        "guardian": ", ".join(f"{g['name']} ({g['relation']})" for g in guardians),
        "admission_number": student["admission_number"], "admitted_on": current["started_on"],
        "class": f"{student['grade']} {student['section']}", "leaving_date": leaving_date, "reason": reason,
        "issued_on": dt.date.today(),
    }, qr_payload)
    pdf_key = f"slc/{organization_id}/{certificate_id}.pdf"
    objectstore.default_store().put(pdf_key, pdf, content_type="application/pdf")
    row = conn.execute(
        """INSERT INTO school_leaving_certificates (id, organization_id, student_id, enrollment_id, kid, reason,
                                                    leaving_date, qr_payload, pdf_key)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
        (certificate_id, organization_id, student["id"], current["id"], kid, reason, leaving_date, qr_payload, pdf_key),
    ).fetchone()
    audit.record(conn, organization_id, api_key_id, "student.left", f"student:{student['id']}",
                 {"slc_id": str(certificate_id), "kid": kid, "date": leaving_date.isoformat(), "reason": reason,
                  "enrollment_id": current["id"]})
    return {"student": get_student(conn, organization_id, student["id"]),
            "slc": {**_certificate_summary(row), "qr_payload": qr_payload}}


# --- certificates ----------------------------------------------------------------------------------------------

def _certificate_row(conn: psycopg.Connection, organization_id: int, certificate_id: Any) -> dict:
    try:
        key = uuid.UUID(str(certificate_id))
    except ValueError:
        raise not_found(f"certificate {certificate_id!r}") from None
    row = conn.execute("SELECT * FROM school_leaving_certificates WHERE id = %s AND organization_id = %s",
                       (key, organization_id)).fetchone()
    if row is None:
        raise not_found(f"certificate {certificate_id!r}")
    return row


def get_certificate(conn: psycopg.Connection, organization_id: int, certificate_id: Any) -> dict:
    row = _certificate_row(conn, organization_id, certificate_id)
    return {**_certificate_summary(row), "student_id": row["student_id"], "qr_payload": row["qr_payload"]}


def certificate_pdf(conn: psycopg.Connection, organization_id: int, certificate_id: Any) -> bytes:
    row = _certificate_row(conn, organization_id, certificate_id)  # first: an unknown certificate is a 404 without storage
    return objectstore.default_store().get(row["pdf_key"])


def revoke_certificate(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, certificate_id: Any) -> dict:
    """A certificate issued in error: refused from now on (a used one stays used: the transfer happened)."""
    row = _certificate_row(conn, organization_id, certificate_id)
    conn.execute("UPDATE school_leaving_certificates SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s",
                 (row["id"],))
    audit.record(conn, organization_id, api_key_id, "slc.revoked", f"student:{row['student_id']}", {"slc_id": str(row["id"])})
    return get_certificate(conn, organization_id, row["id"])


def verify(conn: psycopg.Connection, qr_payload: Any) -> dict:
    """Whether the payload's signature is good under a published, unrevoked key and the certificate is
    neither revoked nor used; with the certificate's details once the signature is good."""
    if not isinstance(qr_payload, str) or not qr_payload.strip():
        raise invalid([FieldError("qr_payload", "required", "must be the text of the certificate's QR code")])
    return _verify(conn, qr_payload)[0]


def _verify(conn: psycopg.Connection, qr_payload: str) -> tuple[dict, dict | None]:
    """The verification result and, when the signature is good, the certificate's row."""
    try:
        fields, message, signature = certificate.parse_payload(qr_payload)
    except certificate.MalformedPayload as err:
        return {"valid": False, "reason": "malformed", "detail": str(err), "kid": None, "certificate": None}, None
    reason = signing.check_signature(conn, fields["k"], message, signature)
    result: dict[str, Any] = {"valid": False, "reason": reason, "detail": None, "kid": fields["k"], "certificate": None}
    if reason in ("unknown-key", "bad-signature"):
        return result, None
    result["certificate"] = {"id": fields.get("c"), "student_id": fields.get("s"), "name": fields.get("n"),
                             "date_of_birth": fields.get("b"), "school": fields.get("u"), "class": fields.get("g"),
                             "leaving_date": fields.get("l")}
    if reason is not None:
        return result, None
    row = None
    try:
        row = conn.execute("SELECT * FROM school_leaving_certificates WHERE id = %s AND kid = %s",
                           (uuid.UUID(fields["c"]), fields["k"])).fetchone()
    except ValueError:
        pass
    if row is None or row["qr_payload"] != qr_payload.strip():
        result["reason"] = "unknown-certificate"
    elif row["revoked_at"] is not None:
        result["reason"] = "certificate-revoked"
    elif row["used_at"] is not None:
        result["reason"] = "already-used"
    else:
        result["valid"] = True
    return result, row


def _transfer_in_state(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, payload: dict) -> dict:
    errors = _unknown_fields(payload, TRANSFER_FIELDS)
    klass = _class(conn, organization_id, payload, errors)
    roll = _roll_number(payload, errors)
    admission_number = _text(payload, "admission_number", errors, required=False)
    admitted_on = _date(payload, "admitted_on", errors, required=False, default=dt.date.today())
    text = payload.get("slc_qr_payload")
    if not isinstance(text, str) or not text.strip():
        errors.append(FieldError("slc_qr_payload", "required", "must be the text of the certificate's QR code"))
    if errors:
        raise invalid(errors)
    check, row = _verify(conn, text)
    if check["reason"] == "already-used":
        raise Problem("certificate-used", "this school leaving certificate has already been used for a transfer")
    if not check["valid"]:
        raise Problem("certificate-invalid", f"the certificate is not acceptable: {check['reason']}",
                      extra={"reason": check["reason"]})
    if row["organization_id"] != organization_id:
        raise Problem("certificate-invalid", "the certificate was issued in another organization (state): enroll "
                                             "the student as a transfer from another state with its details",
                      extra={"reason": "other-organization"})
    cert = conn.execute(
        """UPDATE school_leaving_certificates SET used_at = now()
            WHERE id = %s AND used_at IS NULL AND revoked_at IS NULL RETURNING *""", (row["id"],)).fetchone()
    if cert is None:  # another transfer used it between the check and now
        raise Problem("certificate-used", "this school leaving certificate has already been used for a transfer")
    if admitted_on < cert["leaving_date"]:
        raise invalid([FieldError("admitted_on", "before_leaving",
                                  f"must not be before the leaving date {cert['leaving_date']}")])
    student = _student_row(conn, organization_id, cert["student_id"], lock=True)
    if student["left_on"] is None:
        raise Problem("student-enrolled", f"student {student['id']} is already enrolled in class {student['class_id']}")
    roll = _free_roll_number(conn, klass, roll)
    enrollment_id = _open_enrollment(conn, student["id"], klass, admitted_on, "transfer")
    conn.execute(
        """UPDATE students SET class_id = %s, roll_number = %s, left_on = NULL, admission_number = %s,
                               previous_school = %s, updated_at = now() WHERE id = %s""",
        (klass["id"], roll, admission_number, f"{student['school_name']} ({student['udise']})", student["id"]))
    conn.execute("UPDATE school_leaving_certificates SET used_by_enrollment_id = %s WHERE id = %s",
                 (enrollment_id, cert["id"]))
    audit.record(conn, organization_id, api_key_id, "student.transferred", f"student:{student['id']}",
                 {"slc_id": str(cert["id"]), "kid": cert["kid"], "from_class_id": student["class_id"],
                  "class_id": klass["id"], "enrollment_id": enrollment_id})
    return get_student(conn, organization_id, student["id"])


# --- transfers from other states -------------------------------------------------------------------------------

def _transfer_body(row: dict) -> dict:
    return {"id": row["id"], "student_id": row["student_id"], "status": row["status"], "document": row["document"],
            "review_note": row["review_note"], "reviewed_at": row["reviewed_at"], "created_at": row["created_at"]}


def list_transfers(conn: psycopg.Connection, organization_id: int, page: paging.Page, status: str | None) -> dict:
    if status is not None and status not in ("pending", *REVIEW_DECISIONS):
        raise invalid([FieldError("status", "enum", "must be pending, accepted or rejected")])
    rows = conn.execute(
        """SELECT * FROM out_of_state_transfers
            WHERE organization_id = %s AND (%s::text IS NULL OR status = %s) AND id > %s ORDER BY id LIMIT %s""",
        (organization_id, status, status, page.after[0] if page.after else 0, page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=_transfer_body)


def review_transfer(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, transfer_id: Any,
                    payload: Any) -> dict:
    row = None
    if (row_id := parse_row_id(transfer_id)) is not None:
        row = conn.execute("SELECT * FROM out_of_state_transfers WHERE id = %s AND organization_id = %s FOR UPDATE",
                           (row_id, organization_id)).fetchone()
    if row is None:
        raise not_found(f"transfer {transfer_id!r}")
    payload = _object(payload)
    errors = _unknown_fields(payload, {"decision", "note"})
    decision = payload.get("decision")
    if decision not in REVIEW_DECISIONS:
        errors.append(FieldError("decision", "enum", "must be accepted or rejected"))
    note = _text(payload, "note", errors, required=False)
    if errors:
        raise invalid(errors)
    if row["status"] != "pending":
        raise Problem("already-reviewed", f"transfer {row['id']} was already {row['status']}")
    row = conn.execute(
        """UPDATE out_of_state_transfers SET status = %s, review_note = %s, reviewed_at = now(), reviewed_by = %s
            WHERE id = %s RETURNING *""", (decision, note, api_key_id, row["id"])).fetchone()
    audit.record(conn, organization_id, api_key_id, f"transfer.{decision}", f"student:{row['student_id']}",
                 {"transfer_id": row["id"], "note": note})
    return _transfer_body(row)

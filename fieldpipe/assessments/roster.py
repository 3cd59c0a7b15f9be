"""Schools (by UDISE code), their classes, students (bulk import as a JSON batch or CSV) and subjects."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import psycopg

from fieldpipe import paging
from fieldpipe.answers import AnswerError, normalize_phone
from fieldpipe.domains import parse_row_id
from fieldpipe.announcements.policy import valid_time_zone
from fieldpipe.enrollment.guardians import parse_guardians
from fieldpipe.problems import FieldError, Problem, invalid, not_found

UDISE_PATTERN = re.compile(r"^[0-9]{11}$")
CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_STUDENT_IMPORT = 5000
STUDENT_CSV_COLUMNS = ("roll_number", "name", "parent_phone")
# Optional columns for one guardian per row (the JSON import takes a list of them).
GUARDIAN_CSV_COLUMNS = {"guardian_name": "name", "guardian_relation": "relation", "guardian_phone": "phone",
                        "guardian_language": "preferred_language", "guardian_opted_out": "opted_out"}
CSV_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
SCHOOLS = paging.Keyset("schools", str)
CLASSES = paging.Keyset("classes", int, str)  # ORDER BY grade, section
STUDENTS = paging.Keyset("students", str)  # ORDER BY roll_number
SUBJECTS = paging.Keyset("subjects", str)


def guardians_json(students: str) -> str:
    """A select-list column: the guardians of each row of `students` (a table alias) in the public shape."""
    return f"""(SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'name', g.name, 'relation', g.relation, 'phone', g.phone,
                    'preferred_language', g.language, 'opted_out', g.opted_out) ORDER BY g.position), '[]')
                  FROM guardians g WHERE g.student_id = {students}.id) AS guardians"""


def _text_field(payload: dict, name: str, errors: list[FieldError], prefix: str = "") -> str | None:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        errors.append(FieldError(prefix + name, "required", "must be a non-empty string"))
        return None
    return value.strip()


def _object(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    return payload


# --- schools ---------------------------------------------------------------------------------------------------

def school_body(row: dict) -> dict:
    return {"udise": row["udise"], "name": row["name"], "district": row["district"], "block": row["block"],
            "time_zone": row["time_zone"]}


def create_school(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    payload = _object(payload)
    errors: list[FieldError] = []
    udise = payload.get("udise")
    if not isinstance(udise, str) or not UDISE_PATTERN.fullmatch(udise):
        errors.append(FieldError("udise", "pattern", "must be the school's 11-digit UDISE code"))
    name, district, block = (_text_field(payload, f, errors) for f in ("name", "district", "block"))
    time_zone = payload.get("time_zone")
    if time_zone is not None and not valid_time_zone(time_zone):
        errors.append(FieldError("time_zone", "enum", "must be an IANA time zone such as Asia/Kolkata, or null for "
                                                      "the organization's (GET /api/v1/sms-policy)"))
    if errors:
        raise invalid(errors)
    row = conn.execute(
        """INSERT INTO schools (organization_id, udise, name, district, block, time_zone) VALUES (%s, %s, %s, %s, %s, %s)
           ON CONFLICT (organization_id, udise) DO NOTHING RETURNING *""",
        (organization_id, udise, name, district, block, time_zone),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"school {udise} already exists")
    return school_body(row)


def get_school_row(conn: psycopg.Connection, organization_id: int, udise: str) -> dict:
    row = conn.execute("SELECT * FROM schools WHERE organization_id = %s AND udise = %s", (organization_id, udise)).fetchone()
    if row is None:
        raise not_found(f"school {udise!r}")
    return row


def list_schools(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute("SELECT * FROM schools WHERE organization_id = %s AND udise > %s ORDER BY udise LIMIT %s",
                        (organization_id, page.after[0] if page.after else "", page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["udise"],), shape=school_body)


# --- classes ---------------------------------------------------------------------------------------------------

def class_body(row: dict) -> dict:
    return {"id": row["id"], "school": row["udise"], "grade": row["grade"], "section": row["section"]}


def create_class(conn: psycopg.Connection, organization_id: int, udise: str, payload: Any) -> dict:
    school = get_school_row(conn, organization_id, udise)
    payload = _object(payload)
    errors: list[FieldError] = []
    grade = payload.get("grade")
    if isinstance(grade, bool) or not isinstance(grade, int) or not 1 <= grade <= 12:
        errors.append(FieldError("grade", "range", "must be an integer from 1 to 12"))
    section = payload.get("section", "A")
    if not isinstance(section, str) or not section.strip():
        errors.append(FieldError("section", "type", "must be a non-empty string"))
    if errors:
        raise invalid(errors)
    row = conn.execute(
        """INSERT INTO classes (school_id, grade, section) VALUES (%s, %s, %s)
           ON CONFLICT (school_id, grade, section) DO NOTHING RETURNING *""",
        (school["id"], grade, section.strip()),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"class {grade}{section} already exists in school {udise}")
    return class_body({**row, "udise": udise})


def list_classes(conn: psycopg.Connection, organization_id: int, udise: str, page: paging.Page) -> dict:
    school = get_school_row(conn, organization_id, udise)
    rows = conn.execute(
        """SELECT * FROM classes WHERE school_id = %s AND (grade, section) > (%s, %s)
            ORDER BY grade, section LIMIT %s""",
        (school["id"], *(page.after or (0, "")), page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["grade"], r["section"]), shape=lambda r: class_body({**r, "udise": udise}))


def get_class_row(conn: psycopg.Connection, organization_id: int, class_id: Any) -> dict:
    row = None
    if (row_id := parse_row_id(class_id)) is not None:
        row = conn.execute(
            """SELECT c.*, s.udise, s.district, s.block FROM classes c JOIN schools s ON s.id = c.school_id
                WHERE c.id = %s AND s.organization_id = %s""",
            (row_id, organization_id),
        ).fetchone()
    if row is None:
        raise not_found(f"class {class_id!r}")
    return row


# --- students --------------------------------------------------------------------------------------------------

# A student with their school and guardians: the row `student_body` takes (`st` is the student).
STUDENT_ROWS = f"""SELECT st.*, sc.udise, {guardians_json('st')}
                     FROM students st JOIN classes c ON c.id = st.class_id JOIN schools sc ON sc.id = c.school_id"""


def student_body(row: dict, history: dict | None = None) -> dict:
    """The one public shape of a student, wherever one is answered: a class's roster, an import, a removal, an
    enrollment, a student read alone, the existing student of a duplicate. A student who left has no current
    class, school or roll number. `history` (enrollment periods, certificates) only when reading one student."""
    left = row["left_on"] is not None
    body = {"id": row["id"], "name": row["name"], "status": "left" if left else "enrolled",
            "class_id": None if left else row["class_id"], "school": None if left else row["udise"],
            "roll_number": None if left else row["roll_number"], "left_on": row["left_on"],
            "deleted_at": row["deleted_at"], "date_of_birth": row["date_of_birth"], "gender": row["gender"],
            "admission_number": row["admission_number"], "previous_school": row["previous_school"],
            "parent_phone": row["parent_phone"], "guardians": row["guardians"]}
    if history is not None:
        body.update(history)
    return body


def parse_students_csv(text: str) -> list[dict]:
    """Rows of a CSV with a header naming roll_number, name and (optionally) parent_phone and one guardian's
    guardian_name, guardian_relation, guardian_phone, guardian_language, guardian_opted_out."""
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in STUDENT_CSV_COLUMNS[:2] if c not in (reader.fieldnames or [])]
    if missing:
        raise invalid([FieldError("csv", "header", f"the header must name {', '.join(STUDENT_CSV_COLUMNS)}; "
                                                   f"missing {', '.join(missing)}")])
    return [_csv_student(row) for row in reader]


def _csv_student(row: dict) -> dict:
    student = {k: (v or None) for k, v in row.items() if k in STUDENT_CSV_COLUMNS}
    guardian = {field: row[column] for column, field in GUARDIAN_CSV_COLUMNS.items() if row.get(column)}
    if guardian:
        if "opted_out" in guardian:
            guardian["opted_out"] = CSV_BOOLEANS.get(guardian["opted_out"].strip().lower(), guardian["opted_out"])
        student["guardians"] = [guardian]
    return student


def _check_student(entry: Any, where: str) -> tuple[dict | None, list[FieldError]]:
    if not isinstance(entry, dict):
        return None, [FieldError(where, "type", "must be an object")]
    errors: list[FieldError] = []
    roll = entry.get("roll_number")
    if isinstance(roll, int) and not isinstance(roll, bool):
        roll = str(roll)
    if not isinstance(roll, str) or not roll.strip():
        errors.append(FieldError(f"{where}.roll_number", "required", "must be a non-empty string"))
    name = _text_field(entry, "name", errors, f"{where}.")
    phone = entry.get("parent_phone")
    if phone not in (None, ""):
        try:
            phone = normalize_phone(phone)
        except AnswerError as err:
            errors.append(FieldError(f"{where}.parent_phone", err.code, str(err)))
    else:
        phone = None
    guardians = None
    if entry.get("guardians") is not None:
        guardians, guardian_errors = parse_guardians(entry["guardians"], f"{where}.guardians", require_phone=False)
        errors += guardian_errors
    if errors:
        return None, errors
    if phone is None and guardians:  # parent_phone stays the first guardian's phone unless given
        phone = next((g["phone"] for g in guardians if g["phone"]), None)
    return {"roll_number": roll.strip(), "name": name, "parent_phone": phone, "guardians": guardians}, []


def import_students(conn: psycopg.Connection, organization_id: int, class_id: Any, entries: Any) -> dict:
    """Create or update students by roll number, all or nothing: any bad entry rejects the batch with its errors.

    A re-imported student who had been deleted is enrolled again. Returns counts and the students.
    """
    klass = get_class_row(conn, organization_id, class_id)
    if not isinstance(entries, list) or not entries:
        raise invalid([FieldError("students", "required", "must be a non-empty list of students")])
    if len(entries) > MAX_STUDENT_IMPORT:
        raise invalid([FieldError("students", "too_many", f"at most {MAX_STUDENT_IMPORT} students per import")])
    clean, errors, seen = [], [], {}
    for index, entry in enumerate(entries):
        student, entry_errors = _check_student(entry, f"students[{index}]")
        errors += entry_errors
        if student is None:
            continue
        if student["roll_number"] in seen:
            errors.append(FieldError(f"students[{index}].roll_number", "duplicate",
                                     f"roll number {student['roll_number']!r} is also in students[{seen[student['roll_number']]}]"))
        seen[student["roll_number"]] = index
        clean.append(student)
    if errors:
        raise invalid(errors)
    # New students start an enrollment period in the class, admitted on a day fieldpipe does not know
    # (fieldpipe.enrollment keeps the history).
    rows = conn.execute(
        """WITH upserted AS (
               INSERT INTO students (class_id, roll_number, name, parent_phone)
               SELECT %(class_id)s, * FROM unnest(%(rolls)s::text[], %(names)s::text[], %(phones)s::text[])
               ON CONFLICT (class_id, roll_number) DO UPDATE
                  SET name = EXCLUDED.name, parent_phone = EXCLUDED.parent_phone, deleted_at = NULL, updated_at = now()
                WHERE (students.name, students.parent_phone, students.deleted_at)
                      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.parent_phone, NULL)
               RETURNING *, (xmax = 0) AS inserted
           ), enrolled AS (
               INSERT INTO enrollments (student_id, school_id, class_id, started_on, started_by)
               SELECT id, %(school_id)s, class_id, NULL, 'roster' FROM upserted WHERE inserted
           )
           SELECT * FROM upserted""",
        {"class_id": klass["id"], "school_id": klass["school_id"], "rolls": [s["roll_number"] for s in clean],
         "names": [s["name"] for s in clean], "phones": [s["parent_phone"] for s in clean]},
    ).fetchall()
    _replace_guardians(conn, klass["id"], [s for s in clean if s["guardians"] is not None])
    _parent_phone_as_guardian(conn, klass["id"], [s["roll_number"] for s in clean
                                                  if s["guardians"] is None and s["parent_phone"]])
    created = sum(1 for r in rows if r["inserted"])
    return {"created": created, "updated": len(rows) - created, "unchanged": len(clean) - len(rows),
            "students": _imported(conn, klass["id"], [s["roll_number"] for s in clean])}


def _parent_phone_as_guardian(conn: psycopg.Connection, class_id: int, rolls: list[str]) -> None:
    """A student imported with only `parent_phone` and no guardian yet gets it as a guardian named "Parent", so
    announcements (which read guardians only) reach them."""
    if rolls:
        conn.execute("""INSERT INTO guardians (student_id, position, name, relation, phone)
                        SELECT s.id, 1, 'Parent', 'guardian', s.parent_phone FROM students s
                         WHERE s.class_id = %s AND s.roll_number = ANY(%s) AND s.parent_phone IS NOT NULL
                           AND NOT EXISTS (SELECT 1 FROM guardians g WHERE g.student_id = s.id)""", (class_id, rolls))


def _replace_guardians(conn: psycopg.Connection, class_id: int, students: list[dict]) -> None:
    """The imported guardians replace those of each student whose entry lists guardians; set-based."""
    if not students:
        return
    rolls = [s["roll_number"] for s in students]
    conn.execute("""DELETE FROM guardians g USING students s
                     WHERE g.student_id = s.id AND s.class_id = %s AND s.roll_number = ANY(%s)""", (class_id, rolls))
    rows = [(s["roll_number"], position, g) for s in students for position, g in enumerate(s["guardians"], start=1)]
    conn.execute(
        """INSERT INTO guardians (student_id, position, name, relation, phone, language, opted_out)
           SELECT s.id, x.position, x.name, x.relation, x.phone, x.language, x.opted_out
             FROM unnest(%s::text[], %s::int[], %s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[])
                  AS x(roll_number, position, name, relation, phone, language, opted_out)
             JOIN students s ON s.class_id = %s AND s.roll_number = x.roll_number""",
        ([r for r, _, _ in rows], [p for _, p, _ in rows], [g["name"] for _, _, g in rows],
         [g["relation"] for _, _, g in rows], [g["phone"] for _, _, g in rows],
         [g["preferred_language"] for _, _, g in rows], [g["opted_out"] for _, _, g in rows], class_id))


def _imported(conn: psycopg.Connection, class_id: int, roll_numbers: list[str]) -> list[dict]:
    rows = conn.execute(f"""{STUDENT_ROWS} WHERE st.class_id = %s AND st.roll_number = ANY(%s)
                             ORDER BY st.roll_number""", (class_id, roll_numbers)).fetchall()
    return [student_body(r) for r in rows]


def list_students(conn: psycopg.Connection, organization_id: int, class_id: Any, page: paging.Page,
                  include_deleted: bool) -> dict:
    klass = get_class_row(conn, organization_id, class_id)
    rows = conn.execute(
        f"""{STUDENT_ROWS}
             WHERE st.class_id = %s {'' if include_deleted else 'AND st.deleted_at IS NULL AND st.left_on IS NULL'}
               AND st.roll_number > %s ORDER BY st.roll_number LIMIT %s""",
        (klass["id"], page.after[0] if page.after else "", page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["roll_number"],), shape=student_body)


def delete_student(conn: psycopg.Connection, organization_id: int, student_id: Any) -> dict:
    """Mark a student as gone (kept for history); marks for them are rejected from now on."""
    row = None
    if (row_id := parse_row_id(student_id)) is not None:
        row = conn.execute(
            f"""UPDATE students st SET deleted_at = COALESCE(st.deleted_at, now()), updated_at = now()
                  FROM classes c JOIN schools s ON s.id = c.school_id
                 WHERE st.id = %s AND c.id = st.class_id AND s.organization_id = %s
             RETURNING st.*, s.udise, {guardians_json('st')}""",
            (row_id, organization_id),
        ).fetchone()
    if row is None:
        raise not_found(f"student {student_id!r}")
    return student_body(row)


# --- subjects --------------------------------------------------------------------------------------------------

def create_subject(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    payload = _object(payload)
    errors: list[FieldError] = []
    code = payload.get("code")
    if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
        errors.append(FieldError("code", "pattern", "must match ^[a-z0-9][a-z0-9-]{0,62}$"))
    name = _text_field(payload, "name", errors)
    if errors:
        raise invalid(errors)
    row = conn.execute(
        """INSERT INTO subjects (organization_id, code, name) VALUES (%s, %s, %s)
           ON CONFLICT (organization_id, code) DO NOTHING RETURNING code, name""",
        (organization_id, code, name),
    ).fetchone()
    if row is None:
        raise Problem("already-exists", f"subject {code!r} already exists")
    return subject_body(row)


def subject_body(row: dict) -> dict:
    return {"code": row["code"], "name": row["name"]}


def list_subjects(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute("SELECT code, name FROM subjects WHERE organization_id = %s AND code > %s ORDER BY code LIMIT %s",
                        (organization_id, page.after[0] if page.after else "", page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["code"],), shape=subject_body)

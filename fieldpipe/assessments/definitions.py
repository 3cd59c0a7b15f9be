"""Assessment definitions: type × evaluation × outcome, items with maximum marks, grade scale, pass criterion,
the classes they apply to and a deadline; the per-school listing of open assessments and its ETag.

Of the 32 combinations of type (LO, Unit, Question, None), evaluation (Grade, Marks, Percentage, None) and
outcome (TSP, Boolean, Marks), Grade and Marks evaluation with the TSP outcome are supported, for every type.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.answers import content_hash
from fieldpipe.domains import decimal_problem, parse_row_id
from fieldpipe.problems import FieldError, Problem, invalid, not_found
from fieldpipe.responses import parse_timestamp

TYPES = ("LO", "Unit", "Question", "None")
EVALUATIONS = ("Grade", "Marks", "Percentage", "None")
OUTCOMES = ("TSP", "Boolean", "Marks")
SUPPORTED_EVALUATIONS = ("Grade", "Marks")
SUPPORTED_OUTCOMES = ("TSP",)
SUPPORTED = [{"type": t, "evaluation": e, "outcome": o}
             for t in TYPES for e in SUPPORTED_EVALUATIONS for o in SUPPORTED_OUTCOMES]
LEVELS = ("student", "class", "exam")
ASSESSMENTS = paging.Keyset("assessments", int)
ITEM_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
PATCHABLE = ("title", "deadline", "class_ids", "sheet", "answer_keys")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and decimal_problem(value) is None


def _check_combination(payload: dict, errors: list[FieldError]) -> tuple[str, str, str] | None:
    chosen = []
    for name, allowed in (("type", TYPES), ("evaluation", EVALUATIONS), ("outcome", OUTCOMES)):
        value = payload.get(name)
        if value not in allowed:
            errors.append(FieldError(name, "enum", f"must be one of {', '.join(allowed)}"))
        chosen.append(value)
    if len(chosen) != 3 or any(c is None for c in chosen) or errors:
        return None
    kind, evaluation, outcome = chosen
    if evaluation not in SUPPORTED_EVALUATIONS or outcome not in SUPPORTED_OUTCOMES:
        supported = "; ".join(f"{c['type']}/{c['evaluation']}/{c['outcome']}" for c in SUPPORTED)
        raise Problem("validation-failed",
                      f"{kind}/{evaluation}/{outcome} is not supported; supported combinations: {supported}",
                      [FieldError("evaluation" if evaluation not in SUPPORTED_EVALUATIONS else "outcome",
                                  "unsupported_combination",
                                  "supported: Grade or Marks evaluation with the TSP outcome, for any type")],
                      extra={"supported": SUPPORTED})
    return kind, evaluation, outcome


def _check_items(items: Any, level: str, errors: list[FieldError]) -> list[dict]:
    if not isinstance(items, list) or not items:
        errors.append(FieldError("items", "required", "must be a non-empty list of items"))
        return []
    clean, seen = [], set()
    for index, item in enumerate(items):
        where = f"items[{index}]"
        if not isinstance(item, dict):
            errors.append(FieldError(where, "type", "must be an object"))
            continue
        key = item.get("key")
        if not isinstance(key, str) or not ITEM_KEY.fullmatch(key):
            errors.append(FieldError(f"{where}.key", "pattern", "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"))
        elif key in seen:
            errors.append(FieldError(f"{where}.key", "duplicate", f"key {key!r} is used twice"))
        else:
            seen.add(key)
        max_marks = item.get("max_marks")
        if not _number(max_marks) or max_marks <= 0:
            errors.append(FieldError(f"{where}.max_marks", "range", "must be a number above 0"))
        label = item.get("label", key)
        choices, answer_key = item.get("choices"), item.get("answer_key")
        if level == "exam":
            if (not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices)
                    or len(set(choices)) != len(choices)):
                errors.append(FieldError(f"{where}.choices", "required", "an exam question needs 2 or more distinct options"))
            elif answer_key not in choices:
                errors.append(FieldError(f"{where}.answer_key", "choice", "must be one of the question's choices"))
        elif choices is not None or answer_key is not None:
            errors.append(FieldError(f"{where}.choices", "not_allowed", "choices and answer_key are for exams only"))
        clean.append({"key": key, "label": label if isinstance(label, str) and label else key,
                      "max_marks": max_marks, "choices": choices if level == "exam" else None,
                      "answer_key": answer_key if level == "exam" else None})
    return clean


def _check_scale(payload: dict, evaluation: str, errors: list[FieldError]) -> tuple[list[dict], dict]:
    """The grade scale (best first) and the pass criterion; Grade evaluation needs a scale and a min_grade."""
    scale = payload.get("grade_scale", [])
    criterion = payload.get("pass_criterion")
    clean: list[dict] = []
    if not isinstance(scale, list):
        errors.append(FieldError("grade_scale", "type", "must be a list of {grade, min_percent}, best grade first"))
        scale = []
    for index, step in enumerate(scale):
        where = f"grade_scale[{index}]"
        if not isinstance(step, dict) or not isinstance(step.get("grade"), str) or not step["grade"]:
            errors.append(FieldError(f"{where}.grade", "required", "must be a non-empty string"))
            continue
        percent = step.get("min_percent")
        if evaluation == "Marks" and (not _number(percent) or not 0 <= percent <= 100):
            errors.append(FieldError(f"{where}.min_percent", "range", "must be a number from 0 to 100"))
            continue
        if evaluation != "Marks" and percent is not None and (not _number(percent) or not 0 <= percent <= 100):
            errors.append(FieldError(f"{where}.min_percent", "range", "must be a number from 0 to 100, or absent"))
            continue
        if clean and evaluation == "Marks" and percent >= clean[-1]["min_percent"]:
            errors.append(FieldError(f"{where}.min_percent", "order", "grades go best first, with falling min_percent"))
        clean.append({"grade": step["grade"], "min_percent": percent})
    if len({s["grade"] for s in clean}) != len(clean):
        errors.append(FieldError("grade_scale", "duplicate", "a grade appears twice"))
    if not isinstance(criterion, dict):
        errors.append(FieldError("pass_criterion", "required",
                                 "must be {\"min_percent\": n} for Marks or {\"min_grade\": g} for Grade"))
        return clean, {}
    if evaluation == "Marks":
        percent = criterion.get("min_percent")
        if not _number(percent) or not 0 <= percent <= 100 or set(criterion) != {"min_percent"}:
            errors.append(FieldError("pass_criterion.min_percent", "range", "must be a number from 0 to 100"))
        return clean, {"min_percent": percent}
    if not clean:
        errors.append(FieldError("grade_scale", "required", "Grade evaluation needs a grade scale"))
    if criterion.get("min_grade") not in {s["grade"] for s in clean} or set(criterion) != {"min_grade"}:
        errors.append(FieldError("pass_criterion.min_grade", "choice", "must be a grade of the grade scale"))
    return clean, {"min_grade": criterion.get("min_grade")}


def _check_classes(conn: psycopg.Connection, organization_id: int, class_ids: Any, errors: list[FieldError]) -> list[int]:
    if (not isinstance(class_ids, list) or not class_ids
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in class_ids)):
        errors.append(FieldError("class_ids", "required", "must be a non-empty list of class ids"))
        return []
    known = {r["id"] for r in conn.execute(
        """SELECT c.id FROM classes c JOIN schools s ON s.id = c.school_id
            WHERE s.organization_id = %s AND c.id = ANY(%s)""", (organization_id, class_ids))}
    for index, class_id in enumerate(class_ids):
        if class_id not in known:
            errors.append(FieldError(f"class_ids[{index}]", "unknown", f"class {class_id} does not exist"))
    return sorted(set(class_ids))


def _check_deadline(payload: dict, errors: list[FieldError]) -> dt.datetime | None:
    if payload.get("deadline") is None:
        return None
    return parse_timestamp(payload["deadline"], "deadline", errors)


def _check_sheet(payload: dict, errors: list[FieldError]) -> dict | None:
    sheet = payload.get("sheet")
    if sheet is None:
        return None
    if not isinstance(sheet, dict) or not isinstance(sheet.get("spreadsheet_id"), str) or not sheet["spreadsheet_id"]:
        errors.append(FieldError("sheet.spreadsheet_id", "required", "must name the spreadsheet for the Summary tab"))
        return None
    return {"spreadsheet_id": sheet["spreadsheet_id"]}


def create_assessment(conn: psycopg.Connection, organization_id: int, payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    errors: list[FieldError] = []
    combination = _check_combination(payload, errors)
    title = payload.get("title")
    if not isinstance(title, str) or not title.strip():
        errors.append(FieldError("title", "required", "must be a non-empty string"))
    level = payload.get("level", "student")
    if level not in LEVELS:
        errors.append(FieldError("level", "enum", f"must be one of {', '.join(LEVELS)}"))
    elif level == "exam" and combination and combination[:2] != ("Question", "Marks"):
        errors.append(FieldError("level", "exam", "an exam is a Question assessment evaluated by Marks"))
    evaluation = combination[1] if combination else "Marks"
    items = _check_items(payload.get("items"), level, errors)
    scale, criterion = _check_scale(payload, evaluation, errors)
    class_ids = _check_classes(conn, organization_id, payload.get("class_ids"), errors)
    deadline = _check_deadline(payload, errors)
    sheet = _check_sheet(payload, errors)
    subject_id = None
    if payload.get("subject") is not None:
        row = conn.execute("SELECT id FROM subjects WHERE organization_id = %s AND code = %s",
                           (organization_id, payload["subject"])).fetchone()
        if row is None:
            errors.append(FieldError("subject", "unknown", f"subject {payload['subject']!r} does not exist"))
        else:
            subject_id = row["id"]
    if errors:
        raise invalid(errors)
    kind, evaluation, outcome = combination
    assessment_id = conn.execute(
        """INSERT INTO assessments (organization_id, title, subject_id, type, evaluation, outcome, submission_level,
                                    grade_scale, pass_criterion, deadline, sheet)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (organization_id, title.strip(), subject_id, kind, evaluation, outcome, level, Jsonb(scale), Jsonb(criterion),
         deadline, Jsonb(sheet) if sheet else None),
    ).fetchone()["id"]
    min_percent = criterion.get("min_percent")
    conn.execute(
        """INSERT INTO assessment_items (assessment_id, position, key, label, max_marks, pass_marks, choices, answer_key)
           SELECT %s, position, key, label, max_marks,
                  CASE WHEN %s::numeric IS NULL THEN NULL ELSE max_marks * %s::numeric / 100 END, choices, answer_key
             FROM jsonb_to_recordset(%s)
                  AS t(position integer, key text, label text, max_marks numeric, choices text[], answer_key text)""",
        (assessment_id, min_percent, min_percent, Jsonb([{**i, "position": n} for n, i in enumerate(items, 1)])),
    )
    if scale:
        pass_rank = next((i for i, s in enumerate(scale, 1) if s["grade"] == criterion.get("min_grade")), None)
        conn.execute(
            """INSERT INTO assessment_grades (assessment_id, grade, rank, min_percent, passing)
               SELECT %s, grade, rank, min_percent, %s::integer IS NULL OR rank <= %s
                 FROM unnest(%s::text[], %s::numeric[]) WITH ORDINALITY AS t(grade, min_percent, rank)""",
            (assessment_id, pass_rank, pass_rank, [s["grade"] for s in scale], [s["min_percent"] for s in scale]),
        )
    conn.execute("INSERT INTO assessment_classes (assessment_id, class_id) SELECT %s, unnest(%s::bigint[])",
                 (assessment_id, class_ids))
    return get_assessment(conn, organization_id, assessment_id, with_answer_keys=True)


def get_assessment_row(conn: psycopg.Connection, organization_id: int, assessment_id: Any, lock: bool = False) -> dict:
    row = None
    if (row_id := parse_row_id(assessment_id)) is not None:
        row = conn.execute(
            f"""SELECT a.*, sub.code AS subject FROM assessments a LEFT JOIN subjects sub ON sub.id = a.subject_id
                 WHERE a.id = %s AND a.organization_id = %s {'FOR UPDATE OF a' if lock else ''}""",
            (row_id, organization_id),
        ).fetchone()
    if row is None:
        raise not_found(f"assessment {assessment_id!r}")
    return row


def get_items(conn: psycopg.Connection, assessment_id: int) -> list[dict]:
    return conn.execute("SELECT * FROM assessment_items WHERE assessment_id = %s ORDER BY position",
                        (assessment_id,)).fetchall()


def _plain(value: Any) -> Any:
    """Numbers as JSON numbers: whole marks as integers, so 5 and 5.0 hash and print alike."""
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _item_body(item: dict, with_answer_keys: bool) -> dict:
    body = {"key": item["key"], "label": item["label"], "max_marks": _plain(item["max_marks"]),
            "pass_marks": _plain(item["pass_marks"])}
    if item["choices"] is not None:
        body["choices"] = item["choices"]
        if with_answer_keys:
            body["answer_key"] = item["answer_key"]
    return body


def assessment_body(row: dict, items: list[dict], class_ids: list[int], with_answer_keys: bool) -> dict:
    return {
        "id": row["id"], "title": row["title"], "subject": row["subject"], "type": row["type"],
        "evaluation": row["evaluation"], "outcome": row["outcome"], "level": row["submission_level"],
        "items": [_item_body(i, with_answer_keys) for i in items],
        "grade_scale": row["grade_scale"], "pass_criterion": row["pass_criterion"],
        "class_ids": class_ids, "deadline": row["deadline"], "sheet": row["sheet"], "updated_at": row["updated_at"],
        "closed_at": row["closed_at"],
    }


def get_assessment(conn: psycopg.Connection, organization_id: int, assessment_id: Any, with_answer_keys: bool = False) -> dict:
    row = get_assessment_row(conn, organization_id, assessment_id)
    class_ids = [r["class_id"] for r in conn.execute(
        "SELECT class_id FROM assessment_classes WHERE assessment_id = %s ORDER BY class_id", (row["id"],))]
    return assessment_body(row, get_items(conn, row["id"]), class_ids, with_answer_keys)


def update_assessment(conn: psycopg.Connection, organization_id: int, assessment_id: Any, payload: Any) -> dict:
    """Change title, deadline, classes, sheet, or an exam's answer keys (which regrades exactly the answers
    graded against the old key). Items, scale and criterion are fixed once created, since submitted marks
    were judged against them."""
    row = get_assessment_row(conn, organization_id, assessment_id, lock=True)
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    errors = [FieldError(k, "not_patchable", f"only {', '.join(PATCHABLE)} can change") for k in payload if k not in PATCHABLE]
    changes: dict[str, Any] = {}
    if "title" in payload:
        if not isinstance(payload["title"], str) or not payload["title"].strip():
            errors.append(FieldError("title", "required", "must be a non-empty string"))
        changes["title"] = str(payload["title"]).strip()
    if "deadline" in payload:
        changes["deadline"] = _check_deadline(payload, errors)
    if "sheet" in payload:
        sheet = _check_sheet(payload, errors)
        changes["sheet"] = Jsonb(sheet) if sheet else None
    class_ids = _check_classes(conn, organization_id, payload["class_ids"], errors) if "class_ids" in payload else None
    keys_corrected = False
    if "answer_keys" in payload:
        from fieldpipe.assessments import exams

        keys_corrected = exams.correct_answer_keys(conn, row, payload["answer_keys"], errors)
    if errors:
        raise invalid(errors)
    if keys_corrected:
        exams.regrade(conn, row["id"])
        conn.execute("UPDATE assessments SET updated_at = now() WHERE id = %s", (row["id"],))
    if changes:
        assignments = ", ".join(f"{column} = %({column})s" for column in changes)
        conn.execute(f"UPDATE assessments SET {assignments}, updated_at = now() WHERE id = %(id)s",
                     {**changes, "id": row["id"]})
    if class_ids is not None:
        conn.execute("DELETE FROM assessment_classes WHERE assessment_id = %s AND NOT class_id = ANY(%s)",
                     (row["id"], class_ids))
        conn.execute("""INSERT INTO assessment_classes (assessment_id, class_id) SELECT %s, unnest(%s::bigint[])
                        ON CONFLICT DO NOTHING""", (row["id"], class_ids))
        conn.execute("UPDATE assessments SET updated_at = now() WHERE id = %s", (row["id"],))
    return get_assessment(conn, organization_id, row["id"], with_answer_keys=True)


def open_assessments(conn: psycopg.Connection, organization_id: int, udise: str | None, page: paging.Page) -> tuple[dict, str]:
    """The assessments open now for a school's classes (or all of the organization's), with each class's
    submission count and last receipt, and an ETag that is the hash of exactly this body: any change to an
    assessment, its classes or its submissions changes the tag; a retried duplicate does not."""
    params: dict[str, Any] = {"org": organization_id, "udise": udise, "after": page.after[0] if page.after else 0,
                              "fetch": page.fetch}
    school_filter = ("AND s.udise = %(udise)s AND (a.deadline IS NULL OR a.deadline > now()) AND a.closed_at IS NULL"
                     if udise else "")
    if udise:
        from fieldpipe.assessments.roster import get_school_row

        get_school_row(conn, organization_id, udise)
    rows = conn.execute(
        f"""SELECT a.*, sub.code AS subject,
                   jsonb_agg(jsonb_build_object(
                       'id', c.id, 'school', s.udise, 'grade', c.grade, 'section', c.section,
                       'submissions', COALESCE(st.n, 0), 'last_received_at', st.last_received_at)
                       ORDER BY c.id) AS classes
              FROM assessments a
              JOIN assessment_classes ac ON ac.assessment_id = a.id
              JOIN classes c ON c.id = ac.class_id
              JOIN schools s ON s.id = c.school_id
              LEFT JOIN subjects sub ON sub.id = a.subject_id
              LEFT JOIN LATERAL (
                   SELECT count(*) AS n, max(received_at) AS last_received_at FROM assessment_submissions x
                    WHERE x.assessment_id = a.id AND x.class_id = c.id) st ON true
             WHERE a.organization_id = %(org)s AND a.id > %(after)s {school_filter}
             GROUP BY a.id, sub.code ORDER BY a.id LIMIT %(fetch)s""",
        params,
    ).fetchall()
    items_by_assessment: dict[int, list[dict]] = {}
    for item in conn.execute(
            "SELECT * FROM assessment_items WHERE assessment_id = ANY(%s) ORDER BY assessment_id, position",
            ([r["id"] for r in rows],)):
        items_by_assessment.setdefault(item["assessment_id"], []).append(item)

    def listed(row: dict) -> dict:
        body = assessment_body(row, items_by_assessment.get(row["id"], []), [c["id"] for c in row["classes"]],
                               with_answer_keys=False)
        return {**body, "classes": row["classes"]}

    result = page.answer(rows, key=lambda r: (r["id"],), shape=listed)
    return result, etag_of(result)


def etag_of(body: Any) -> str:
    """A strong ETag that is the hash of exactly this body: any change to it changes the tag."""
    return '"' + content_hash(_jsonable(body))[:32] + '"'


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    return _plain(value)

"""Flags, the read side: a form's flags page by page, and a response's open flags.

Flags are written by validation runs (`fieldpipe/rules/ledger.py`); nothing here changes them.
"""

from __future__ import annotations

import psycopg

from fieldpipe import paging
from fieldpipe.problems import FieldError, invalid

FLAG_STATUSES = ("open", "closed", "all")
FLAGS = paging.Keyset("flags", int)

FLAG_COLUMNS = """f.id, r.submission_id, f.revision, f.rule_id, f.rules_version, f.severity, f.notify, f.message, f.status,
                  f.close_reason, f.opened_at, f.closed_at"""


def flag_body(row: dict) -> dict:
    return {
        "id": row["id"], "submission_id": str(row["submission_id"]), "revision": row["revision"],
        "rule_id": row["rule_id"], "rules_version": row["rules_version"], "severity": row["severity"],
        "notify": row["notify"], "message": row["message"], "status": row["status"], "close_reason": row["close_reason"], "opened_at": row["opened_at"],
        "closed_at": row["closed_at"],
    }


def list_flags(conn: psycopg.Connection, form: dict, page: paging.Page, *, status: str = "open") -> dict:
    """A page of the form's flags in id order."""
    if status not in FLAG_STATUSES:
        raise invalid([FieldError("status", "enum", f"must be one of {', '.join(FLAG_STATUSES)}")])
    rows = conn.execute(
        f"""SELECT {FLAG_COLUMNS} FROM flags f JOIN responses r ON r.id = f.response_id
             WHERE f.form_id = %s AND f.id > %s AND (%s = 'all' OR f.status = %s)
             ORDER BY f.id LIMIT %s""",
        (form["id"], page.after[0] if page.after else 0, status, status, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=flag_body)


def open_flags(conn: psycopg.Connection, form: dict, submission_id: str) -> list[dict]:
    """The open flags of one response (call after the response was found, so the id is a valid UUID)."""
    rows = conn.execute(
        f"""SELECT {FLAG_COLUMNS} FROM flags f JOIN responses r ON r.id = f.response_id
             WHERE r.form_id = %s AND r.submission_id = %s AND f.status = 'open' ORDER BY f.id""",
        (form["id"], submission_id),
    ).fetchall()
    return [flag_body(r) for r in rows]

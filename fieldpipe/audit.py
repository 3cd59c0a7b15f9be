"""The audit log: one row per action on a student's record or a signing key, with the API key that did it."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging

ENTRIES = paging.Keyset("audit", int)  # ORDER BY id


def record(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, action: str, subject: str,
           details: dict[str, Any] | None = None) -> None:
    conn.execute(
        "INSERT INTO audit_log (organization_id, api_key_id, action, subject, details) VALUES (%s, %s, %s, %s, %s)",
        (organization_id, api_key_id, action, subject, Jsonb(details or {})),
    )


def entries(conn: psycopg.Connection, organization_id: int, page: paging.Page, subject: str | None = None) -> dict:
    """The organization's audit rows, oldest first; `subject` such as `student:12` narrows them."""
    rows = conn.execute(
        """SELECT a.id, a.action, a.subject, a.details, a.at, a.api_key_id, k.display_prefix AS api_key
             FROM audit_log a LEFT JOIN api_keys k ON k.id = a.api_key_id
            WHERE a.organization_id = %s AND a.id > %s AND (%s::text IS NULL OR a.subject = %s)
            ORDER BY a.id LIMIT %s""",
        (organization_id, page.after[0] if page.after else 0, subject, subject, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],))

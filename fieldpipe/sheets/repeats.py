"""Repeats in Sheets: one worksheet per repeat of the form, one row per item, keyed by submission id and index.

The worksheet is '<worksheet> - <repeat key>' (e.g. 'Responses - children'); its columns are the submission
id, the item's 1-based index, then the repeat's questions as on the main tab (a repeat nested inside a
repeat is not exported). The map (export, repeat, submission, index) -> row lives in `sheet_repeat_rows`
with the revision written, so a run writes only items of responses that are new or edited since: an edit
rewrites its items in place, appends items it added and blanks the rows of items it removed.
Unlike the main tab, these tabs are not reconciled against hand edits.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from fieldpipe.sheets.layout import Column, answer_cell, answer_key, latest_questions, question_columns
from fieldpipe.sheets.targets import SheetTarget

TITLE_MAX = 100  # Google's limit on a worksheet title


def form_repeats(conn: psycopg.Connection, form_id: int) -> list[dict]:
    versions = conn.execute("SELECT questions FROM form_versions WHERE form_id = %s ORDER BY version",
                            (form_id,)).fetchall()
    return [q for q in latest_questions([v["questions"] for v in versions]) if q["type"] == "repeat"]


def repeat_title(base: str, repeat_key: str) -> str:
    return f"{base} - {repeat_key}"[:TITLE_MAX]


def repeat_columns(repeat: dict) -> list[Column]:
    return [Column("submission_id", "Submission ID"), Column("index", "Index", "integer"),
            *question_columns([repeat["questions"]])]


def _pending(conn: psycopg.Connection, export_id: int, form_id: int, key: str) -> list[dict]:
    """Responses whose items are not written at their current revision, or whose written items must go."""
    return conn.execute(
        """SELECT r.submission_id, r.revision,
                  CASE jsonb_typeof(r.answers -> %(key)s) WHEN 'array' THEN r.answers -> %(key)s END AS items
             FROM responses r
            WHERE r.form_id = %(form)s
              AND ((jsonb_typeof(r.answers -> %(key)s) = 'array' AND jsonb_array_length(r.answers -> %(key)s) > 0
                    AND NOT EXISTS (SELECT 1 FROM sheet_repeat_rows m
                                     WHERE m.export_id = %(export)s AND m.repeat_key = %(key)s
                                       AND m.submission_id = r.submission_id AND m.revision = r.revision))
                   OR EXISTS (SELECT 1 FROM sheet_repeat_rows m
                               WHERE m.export_id = %(export)s AND m.repeat_key = %(key)s
                                 AND m.submission_id = r.submission_id AND m.revision <> r.revision))
            ORDER BY r.received_at, r.id""",
        {"export": export_id, "form": form_id, "key": key},
    ).fetchall()


def export_repeats(conn: psycopg.Connection, export_id: int, form_id: int, target: SheetTarget, base: str) -> int:
    """Bring every repeat tab of the form up to date; return how many rows were written."""
    written = 0
    for repeat in form_repeats(conn, form_id):
        pending = _pending(conn, export_id, form_id, repeat["key"])
        if pending:
            written += _export_repeat(conn, export_id, repeat, pending, target, base)
    return written


def _export_repeat(conn: psycopg.Connection, export_id: int, repeat: dict, pending: list[dict],
                   target: SheetTarget, base: str) -> int:
    key, title, columns = repeat["key"], repeat_title(base, repeat["key"]), repeat_columns(repeat)
    if title not in target.worksheets():
        target.add_worksheet(title, len(columns))
    mapped = {(r["submission_id"], r["item_index"]): r["row_number"] for r in conn.execute(
        """SELECT submission_id, item_index, row_number FROM sheet_repeat_rows
            WHERE export_id = %s AND repeat_key = %s AND submission_id = ANY(%s)""",
        (export_id, key, [p["submission_id"] for p in pending]))}
    last = conn.execute("SELECT COALESCE(max(row_number), 1) AS last FROM sheet_repeat_rows "
                        "WHERE export_id = %s AND repeat_key = %s", (export_id, key)).fetchone()["last"]
    updates: dict[int, list[Any]] = {1: [c.label for c in columns]}
    appends: list[tuple[tuple[uuid.UUID, int, int], list[Any]]] = []
    placed: list[tuple[uuid.UUID, int, int, int]] = []
    removed: list[tuple[uuid.UUID, int]] = []
    for response in pending:
        items = response["items"] or []
        for index, item in enumerate(items, start=1):
            row = [str(response["submission_id"]), index,
                   *(answer_cell(c, item.get(answer_key(c))) for c in columns[2:])]
            where = (response["submission_id"], index)
            if where in mapped:
                updates[mapped[where]] = row
                placed.append((*where, mapped[where], response["revision"]))
            else:
                appends.append(((*where, response["revision"]), row))
        for (submission_id, index), row_number in mapped.items():
            if submission_id == response["submission_id"] and index > len(items):
                updates[row_number] = [""] * len(columns)
                removed.append((submission_id, index))
    target.write_rows(title, updates)
    landed = target.append_rows(title, last + 1, [row for _, row in appends]) if appends else []
    placed += [(sid, index, number, revision) for ((sid, index, revision), _), number in zip(appends, landed)]
    if placed:
        conn.execute(
            """INSERT INTO sheet_repeat_rows (export_id, repeat_key, submission_id, item_index, row_number, revision)
               SELECT %s, %s, * FROM unnest(%s::uuid[], %s::int[], %s::int[], %s::int[])
               ON CONFLICT (export_id, repeat_key, submission_id, item_index)
               DO UPDATE SET row_number = EXCLUDED.row_number, revision = EXCLUDED.revision""",
            (export_id, key, *map(list, zip(*placed))),
        )
    if removed:
        conn.execute(
            """DELETE FROM sheet_repeat_rows WHERE export_id = %s AND repeat_key = %s
                 AND (submission_id, item_index) IN (SELECT * FROM unnest(%s::uuid[], %s::int[]))""",
            (export_id, key, *map(list, zip(*removed))),
        )
    return len(updates) - 1 + len(appends)

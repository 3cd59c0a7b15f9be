"""Incremental export of one form's responses to a sheet: one row per response, one column per question.

A run (`export_form`) does, for one (form, target, worksheet):

1. Finds the work in SQL: responses not yet in the row map, edited since the watermark, whose row was
   found in the sheet with unknown content, or whose open flag count changed. No work and an unchanged
   layout: the run ends without a single API request.
2. Reconciles with the sheet: reads every export tab's header and id column (one batched read), re-maps
   columns moved by hand by their label, rebuilds the row map from the id column (rows deleted by hand
   are re-added, rows written by a run that died before recording them are found, not duplicated).
   A column of ours that is missing from the header (renamed or deleted by hand) blocks the export of
   that form: nothing is written and the report says which label to restore.
3. Writes: the header (new questions get new columns at the end), edited rows in place (one batched
   update), new rows appended in chunks of up to ~1.8 MB (thousands of rows a request). A tab is closed
   before it passes `cell_limit_share` of Google's 10 million cells; rows continue in '<worksheet> (2)'.
4. Records the rows written in the row map and advances the watermark.

An append whose outcome is unknown (5xx, timeout) is never retried blindly: the run reconciles against
the id column again and appends only what is still missing.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe.config import Settings
from fieldpipe.sheets.layout import ID_COLUMN, Column, form_columns, row_cells
from fieldpipe.sheets.repeats import export_repeats
from fieldpipe.sheets.targets import SheetTarget, WriteOutcomeUnknown

log = logging.getLogger(__name__)

SPREADSHEET_CELL_LIMIT = 10_000_000
DEFAULT_CELL_LIMIT_SHARE = 0.45  # two full tabs and some room for the analysts' own tabs fit in one spreadsheet
DEFAULT_WORKSHEET = "Responses"
LOOKBACK = dt.timedelta(minutes=10)  # edits committed late, with an earlier updated_at, are still seen
RECONCILE_ATTEMPTS = 3


class ExportBlocked(Exception):
    """The sheet was changed by hand in a way the export cannot repair safely."""

    needs_a_person = True

    def __init__(self, report: "ExportReport"):
        super().__init__("; ".join(report.problems))
        self.report = report


@dataclass
class ExportReport:
    form: str
    target: str
    worksheet: str
    appended: int = 0
    updated: int = 0
    repeat_rows: int = 0  # rows written to the repeats' own tabs
    requests: int = 0
    blocked: bool = False
    worksheets_started: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def block(self, problem: str) -> None:
        self.problems.append(problem)
        self.blocked = True

    def summary(self) -> str:
        text = (f"form {self.form} -> {self.target} [{self.worksheet}]: {self.appended} rows appended, "
                f"{self.updated} updated in place, {self.repeat_rows} repeat rows written, {self.requests} API requests")
        if self.worksheets_started:
            text += f"; continued in new tab(s) {', '.join(self.worksheets_started)}"
        if self.repairs:
            text += f"; repaired: {'; '.join(self.repairs)}"
        if self.problems:
            text += f"; NOT repaired: {'; '.join(self.problems)}"
        return text


@dataclass
class Tab:
    """One export tab: its title and which of our columns sits at which position (index = column - 1)."""

    title: str
    columns: list[tuple[str, str] | None]  # (key, label) at each position; None = a column we do not own
    ids: dict[uuid.UUID, int] = field(default_factory=dict)
    last_row: int = 1  # the header

    def position(self) -> dict[str, int]:
        return {c[0]: i for i, c in enumerate(self.columns) if c is not None}

    def stored(self) -> dict:
        return {"title": self.title, "columns": [list(c) if c else None for c in self.columns]}


def cell_limit_share(sheet_settings: Mapping[str, Any]) -> float:
    return float(sheet_settings.get("cell_limit_share") or Settings.from_env().sheets.cell_limit_share
                 or DEFAULT_CELL_LIMIT_SHARE)


def _state(conn: psycopg.Connection, form_id: int, target: str, worksheet: str) -> dict:
    conn.execute(
        """INSERT INTO sheet_exports (form_id, target, worksheet) VALUES (%s, %s, %s)
           ON CONFLICT (form_id, target, worksheet) DO NOTHING""", (form_id, target, worksheet))
    return conn.execute(
        "SELECT * FROM sheet_exports WHERE form_id = %s AND target = %s AND worksheet = %s",
        (form_id, target, worksheet)).fetchone()


def _open_flag_counts(conn: psycopg.Connection) -> str:
    """SQL for open flags per response; the flags table (issue 5) may not be migrated yet."""
    if conn.execute("SELECT to_regclass('public.flags') IS NOT NULL AS present").fetchone()["present"]:
        # this form's only: every form's open flags, counted once per form, would make a run cost forms x flags
        return ("SELECT response_id, count(*)::int AS open_flags FROM flags "
                "WHERE status = 'open' AND form_id = %(form)s GROUP BY response_id")
    return "SELECT NULL::bigint AS response_id, 0 AS open_flags WHERE false"


def _commit(conn: psycopg.Connection) -> None:
    """Keep what is recorded so far, so a failure later in the run does not lose it."""
    if not conn.autocommit:
        conn.commit()


def pending_responses(conn: psycopg.Connection, export: dict, form_id: int, limit: int | None = None) -> list[dict]:
    """The responses whose row is missing or out of date, in the order they were received."""
    return conn.execute(
        f"""WITH open_flags AS ({_open_flag_counts(conn)})
            SELECT r.id, r.submission_id, r.submitted_at, r.received_at, r.updated_at, r.collector_id,
                   r.revision, r.answers, COALESCE(f.open_flags, 0) AS open_flags,
                   m.worksheet, m.row_number
              FROM responses r
              LEFT JOIN sheet_rows m ON m.export_id = %(export)s AND m.submission_id = r.submission_id
              LEFT JOIN open_flags f ON f.response_id = r.id
             WHERE r.form_id = %(form)s
               AND (m.submission_id IS NULL
                    OR m.revision IS NULL
                    OR (r.updated_at > %(since)s AND m.revision <> r.revision)
                    OR m.open_flags <> COALESCE(f.open_flags, 0))
             ORDER BY r.received_at, r.id
             LIMIT %(limit)s""",
        {"export": export["id"], "form": form_id, "limit": limit,
         "since": (export["watermark"] or dt.datetime.min.replace(tzinfo=dt.timezone.utc))},
    ).fetchall()


def _load_tabs(export: dict, base: str) -> list[Tab]:
    tabs = [Tab(t["title"], [tuple(c) if c else None for c in t["columns"]]) for t in export["worksheets"]]
    return tabs or [Tab(base, [])]


def _reconcile(target: SheetTarget, tabs: list[Tab], columns: list[Column], report: ExportReport) -> list[Tab]:
    """Check each tab's header and read its id column; repair what is safe, report what is not."""
    sizes = target.worksheets()
    present = []
    for tab in tabs:
        if tab.title in sizes:
            present.append(tab)
        elif tab.columns:
            report.repairs.append(f"tab {tab.title!r} was deleted: its rows are exported again")
    tabs = present or [Tab(tabs[0].title, [])]
    if tabs[0].title not in sizes:
        target.add_worksheet(tabs[0].title, len(columns))
        log.info("created tab %r", tabs[0].title)
    expected_id_at = [(tab.position().get(ID_COLUMN, 0)) for tab in tabs]
    lines = target.read_lines([(t.title, "row", 1) for t in tabs]
                              + [(t.title, "column", i + 1) for t, i in zip(tabs, expected_id_at)])
    headers, id_columns = lines[:len(tabs)], lines[len(tabs):]
    reread = []
    for n, (tab, header) in enumerate(zip(tabs, headers)):
        _match_header(tab, header, columns, report)
        id_at = tab.position().get(ID_COLUMN)
        if id_at is not None and id_at != expected_id_at[n]:
            reread.append(n)
    if reread:
        for n, column in zip(reread, target.read_lines([(tabs[n].title, "column", tabs[n].position()[ID_COLUMN] + 1)
                                                        for n in reread])):
            id_columns[n] = column
    for tab, column in zip(tabs, id_columns):
        tab.ids, tab.last_row = _read_ids(tab, column, report)
    return tabs


def _match_header(tab: Tab, header: list[Any], columns: list[Column], report: ExportReport) -> None:
    """Re-map our columns to where their labels are now; a missing label is a problem, not a guess."""
    header = [str(h) for h in header]
    if [c[1] if c else None for c in tab.columns] == [h or None for h in header] or not any(header):
        return
    if not tab.columns:  # the export state was lost: adopt the header by label
        by_label = {c.label: c for c in columns}
        tab.columns = [(by_label[h].key, h) if h in by_label else None for h in header]
        if ID_COLUMN not in tab.position():
            report.block(f"tab {tab.title!r} has content but no {columns[0].label!r} column; "
                         "it was not written by this export, so nothing is written to it")
        return
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(header):
        by_label.setdefault(label, []).append(i)
    remapped: list[tuple[str, str] | None] = [None] * len(header)
    moved = []
    for old_index, column in enumerate(tab.columns):
        if column is None:
            continue
        key, label = column
        if old_index < len(header) and header[old_index] == label:
            remapped[old_index] = column
        elif len(by_label.get(label, [])) == 1 and remapped[by_label[label][0]] is None:
            remapped[by_label[label][0]] = column
            moved.append(label)
        else:
            report.block(
                f"tab {tab.title!r}: column {label!r} is missing from the header (renamed or deleted by hand); "
                f"name a column {label!r} again, or delete the tab to have it rebuilt")
    if moved:
        report.repairs.append(f"tab {tab.title!r}: moved column(s) {', '.join(map(repr, moved))} found by label")
    tab.columns = remapped


def _read_ids(tab: Tab, column: list[Any], report: ExportReport) -> tuple[dict[uuid.UUID, int], int]:
    ids: dict[uuid.UUID, int] = {}
    duplicates = 0
    last_row = max(len(column), 1)
    for row, value in enumerate(column[1:], start=2):
        try:
            submission = uuid.UUID(str(value))
        except ValueError:
            continue
        if submission in ids:
            duplicates += 1
            continue
        ids[submission] = row
    if duplicates:
        report.problems.append(f"tab {tab.title!r}: {duplicates} submission id(s) appear on more than one row; "
                               "the first row is kept current, delete the others by hand")
    return ids, last_row


def _store_row_map(conn: psycopg.Connection, export_id: int, tabs: list[Tab], report: ExportReport) -> None:
    """Make the row map what the sheet says; count what changed, since each kind means a hand edit or a crash."""
    ids, titles, rows = [], [], []
    for tab in tabs:
        for submission, row in tab.ids.items():
            ids.append(submission)
            titles.append(tab.title)
            rows.append(row)
    stats = conn.execute(
        """WITH sheet AS (SELECT * FROM unnest(%(ids)s::uuid[], %(titles)s::text[], %(rows)s::int[])
                                  AS t(submission_id, worksheet, row_number)),
                stored AS (SELECT * FROM sheet_rows WHERE export_id = %(export)s)
           SELECT count(*) FILTER (WHERE s.submission_id IS NULL) AS deleted,
                  count(*) FILTER (WHERE m.submission_id IS NULL) AS found,
                  count(*) FILTER (WHERE (m.worksheet, m.row_number) <> (s.worksheet, s.row_number)) AS moved
             FROM stored m FULL JOIN sheet s ON s.submission_id = m.submission_id""",
        {"ids": ids, "titles": titles, "rows": rows, "export": export_id}).fetchone()
    conn.execute(
        """DELETE FROM sheet_rows m WHERE m.export_id = %(export)s
              AND NOT (m.submission_id = ANY(%(ids)s::uuid[]))""", {"export": export_id, "ids": ids})
    conn.execute(
        """INSERT INTO sheet_rows (export_id, submission_id, worksheet, row_number)
           SELECT %(export)s, * FROM unnest(%(ids)s::uuid[], %(titles)s::text[], %(rows)s::int[])
           ON CONFLICT (export_id, submission_id) DO UPDATE
              SET worksheet = excluded.worksheet, row_number = excluded.row_number""",
        {"ids": ids, "titles": titles, "rows": rows, "export": export_id})
    if stats["deleted"]:
        report.repairs.append(f"{stats['deleted']} row(s) missing from the sheet (deleted by hand) are added again")
    if stats["found"]:
        report.repairs.append(f"{stats['found']} row(s) found in the sheet but not in the row map "
                              "(written by a run that did not finish) are kept, not duplicated")
    if stats["moved"]:
        report.repairs.append(f"row map rebuilt: {stats['moved']} row(s) had moved")
    _commit(conn)


def _extend_columns(tab: Tab, columns: list[Column]) -> bool:
    """Give every layout column a position in the tab (new ones at the end); True when the header changes."""
    changed = False
    position = tab.position()
    for column in columns:
        if column.key not in position:
            tab.columns.append((column.key, column.label))
            changed = True
        elif tab.columns[position[column.key]][1] != column.label:  # relabelled in a newer form version
            tab.columns[position[column.key]] = (column.key, column.label)
            changed = True
    return changed


def _header(tab: Tab) -> list[Any]:
    return [c[1] if c else None for c in tab.columns]


def _row(tab: Tab, cells: dict[str, Any]) -> list[Any]:
    """Cells in the tab's column order: our empty answers clear a cell, others' columns are left alone."""
    return [None if c is None else ("" if cells.get(c[0]) is None else cells[c[0]]) for c in tab.columns]


def _record(conn: psycopg.Connection, export_id: int, written: list[tuple[dict, str, int]]) -> None:
    if not written:
        return
    conn.execute(
        """INSERT INTO sheet_rows (export_id, submission_id, worksheet, row_number, revision, open_flags)
           SELECT %(export)s, * FROM unnest(%(ids)s::uuid[], %(titles)s::text[], %(rows)s::int[],
                                            %(revisions)s::int[], %(flags)s::int[])
           ON CONFLICT (export_id, submission_id) DO UPDATE
              SET worksheet = excluded.worksheet, row_number = excluded.row_number,
                  revision = excluded.revision, open_flags = excluded.open_flags""",
        {"export": export_id, "ids": [r["submission_id"] for r, _, _ in written],
         "titles": [t for _, t, _ in written], "rows": [n for _, _, n in written],
         "revisions": [r["revision"] for r, _, _ in written], "flags": [r["open_flags"] for r, _, _ in written]})
    _commit(conn)


def _next_tab_title(base: str, tabs: list[Tab], existing: set[str]) -> str:
    number = len(tabs) + 1
    while f"{base} ({number})" in existing:
        number += 1
    return f"{base} ({number})"


def _append(target: SheetTarget, conn: psycopg.Connection, export_id: int, tabs: list[Tab], base: str,
            columns: list[Column], new_rows: list[dict], budget: int, report: ExportReport) -> None:
    """Append to the last tab; start '<base> (n)' when the next rows would pass the tab's cell budget."""
    remaining = new_rows
    while remaining:
        tab = tabs[-1]
        width = max(len(tab.columns), 1)
        room = budget // width - tab.last_row
        if room <= 0:
            sizes = target.worksheets()
            used = sum(size.rows * size.columns for size in sizes.values())
            if used + budget > SPREADSHEET_CELL_LIMIT:
                report.block(f"the spreadsheet holds {used} cells and a new tab of up to {budget} would pass "
                             f"Google's {SPREADSHEET_CELL_LIMIT}; set settings.sheet.spreadsheet_id to a new spreadsheet")
                raise ExportBlocked(report)
            title = _next_tab_title(base, tabs, set(sizes))
            log.warning("tab %r would pass %d cells; continuing in new tab %r", tab.title, budget, title)
            target.add_worksheet(title, len(columns))
            tab = Tab(title, [])
            _extend_columns(tab, columns)
            target.write_rows(title, {1: _header(tab)})
            tabs.append(tab)
            report.worksheets_started.append(title)
            room = budget // max(len(tab.columns), 1) - tab.last_row
            if room <= 0:
                raise ValueError(f"cell_limit_share leaves no room for even one row of {len(tab.columns)} cells")
        batch, remaining = remaining[:room], remaining[room:]
        landed = target.append_rows(tab.title, tab.last_row + 1,
                                    [_row(tab, row_cells(columns, response)) for response in batch])
        tab.last_row = max(landed)
        _record(conn, export_id, [(response, tab.title, number) for response, number in zip(batch, landed)])
        report.appended += len(batch)


def export_form(conn: psycopg.Connection, form_id: int, target: SheetTarget,
                sheet_settings: Mapping[str, Any] | None = None) -> ExportReport:
    """Bring one form's sheet up to date (see the module docstring). Safe to rerun at any point."""
    sheet_settings = sheet_settings or {}
    base = sheet_settings.get("worksheet") or DEFAULT_WORKSHEET
    slug = conn.execute("SELECT slug FROM forms WHERE id = %s", (form_id,)).fetchone()["slug"]
    export = _state(conn, form_id, target.name, base)
    report = ExportReport(slug, target.name, base)
    # One exporter per (form, target, tab) at a time: two would both append the same new rows.
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext('sheet_export'), %s::int) AS got",
                        (export["id"],)).fetchone()["got"]:
        report.problems.append("another run is exporting this form; skipped")
        return report
    try:
        return _export(conn, form_id, target, sheet_settings, base, export, report)
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('sheet_export'), %s::int)", (export["id"],))


def _export(conn: psycopg.Connection, form_id: int, target: SheetTarget, sheet_settings: Mapping[str, Any],
            base: str, export: dict, report: ExportReport) -> ExportReport:
    started = conn.execute("SELECT now() AS now").fetchone()["now"]
    columns = form_columns(conn, form_id)
    tabs = _load_tabs(export, base)
    pending = pending_responses(conn, export, form_id, limit=1)
    layout_changed = any(_extend_columns(Tab(t.title, list(t.columns)), columns) for t in tabs)
    if not pending and not layout_changed and export["worksheets"]:
        report.repeat_rows = export_repeats(conn, export["id"], form_id, target, base)
        _finish(conn, export, tabs, started, "ok", report, target)
        return report
    budget = round(SPREADSHEET_CELL_LIMIT * cell_limit_share(sheet_settings))
    for attempt in range(RECONCILE_ATTEMPTS):
        tabs = _reconcile(target, tabs, columns, report)
        if report.blocked:
            _finish(conn, export, tabs, started, "blocked", report, target)
            raise ExportBlocked(report)
        _store_row_map(conn, export["id"], tabs, report)
        pending = pending_responses(conn, export, form_id)
        headers = {}
        for tab in tabs:
            if _extend_columns(tab, columns) or tab.last_row == 1 and not tab.ids:
                headers[tab.title] = _header(tab)
        for title, header in headers.items():
            target.write_rows(title, {1: header})
        by_title = {t.title: t for t in tabs}
        edits = [r for r in pending if r["worksheet"] in by_title]
        new_rows = [r for r in pending if r["worksheet"] not in by_title]
        for title, tab in by_title.items():
            rows = {r["row_number"]: _row(tab, row_cells(columns, r)) for r in edits if r["worksheet"] == title}
            target.write_rows(title, rows)
        _record(conn, export["id"], [(r, r["worksheet"], r["row_number"]) for r in edits])
        report.updated += len(edits)
        try:
            _append(target, conn, export["id"], tabs, base, columns, new_rows, budget, report)
            break
        except ExportBlocked:
            _finish(conn, export, tabs, started, "blocked", report, target)
            raise
        except WriteOutcomeUnknown as err:
            if attempt + 1 == RECONCILE_ATTEMPTS:
                raise
            log.warning("%s; reconciling against the id column before appending again", err)
    report.repeat_rows = export_repeats(conn, export["id"], form_id, target, base)
    _finish(conn, export, tabs, started, "ok", report, target)
    return report


def _finish(conn: psycopg.Connection, export: dict, tabs: list[Tab], started: dt.datetime, status: str,
            report: ExportReport, target: SheetTarget) -> None:
    target.close()
    report.requests = target.request_count
    watermark = started - LOOKBACK if status == "ok" else export["watermark"]
    conn.execute(
        """UPDATE sheet_exports SET worksheets = %s, watermark = GREATEST(watermark, %s), last_run_at = now(),
                  last_status = %s, last_report = %s WHERE id = %s""",
        (Jsonb([t.stored() for t in tabs]), watermark, status, Jsonb(asdict(report)), export["id"]))
    _commit(conn)
    log.info(report.summary())

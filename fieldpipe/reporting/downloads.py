"""Downloads of a form's responses as CSV or XLSX: streamed, filtered as the listing is, masked by role.

CSV is PostgreSQL's own `COPY ... TO STDOUT` of `columns.form_select` (flat flavour), passed through in the
chunks the server sends, so a million rows never sit in memory; a UTF-8 byte order mark leads so that
spreadsheet programs read Devanagari as such. A text cell that a spreadsheet would run as a formula (it
starts with = + - @ or a tab and holds more than digits, dots, stars and spaces) gets a leading apostrophe.

XLSX is written by openpyxl's write-only workbook into a spooled temporary file (a zip cannot be streamed
before it is complete), with typed cells, a frozen bold header, filters and sensible widths.

A form with repeats downloads as a zip of CSV files (the form's, then one per repeat, keyed by submission
id and item index) or as one workbook with a sheet per repeat.

The ETag is a digest of what the rows are made of (the form's version, the matching responses' count and
latest change, the form's latest flag change), the filters, the masking and the format: an unchanged
export answers 304 without reading a row.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
import tempfile
import zipfile
from typing import Iterator

import psycopg
from psycopg import sql

from fieldpipe.reporting.columns import ReportColumn, bound, form_select, repeat_select
from fieldpipe.sheets.repeats import form_repeats
from fieldpipe.reporting.workbook import write_workbook

CSV_BOM = "\ufeff".encode()
Filter = tuple[list[str], list]  # (SQL conditions on `responses r` with %s parameters, the parameters)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def etag(conn: psycopg.Connection, form: dict, where: Filter, *, masked: bool, fmt: str) -> str:
    clauses, params = where
    state = conn.execute(
        f"""SELECT count(*) AS n, max(r.updated_at) AS changed,
                   (SELECT max(greatest(fl.opened_at, fl.closed_at)) FROM flags fl WHERE fl.form_id = %s) AS flagged
              FROM responses r WHERE {' AND '.join(clauses)}""", (form["id"], *params)).fetchone()
    key = repr((form["id"], form["current_version"], state["n"], state["changed"], state["flagged"],
                clauses, [str(p) for p in params], masked, fmt))
    return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'


def _csv_cell(column: ReportColumn, expr: sql.Composable) -> sql.Composable:
    if column.sql_type == "timestamptz":
        return sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')").format(expr)
    if column.sql_type == "text":
        return sql.SQL("reporting.csv_safe({})").format(expr)
    if column.sql_type == "boolean":
        return sql.SQL("CASE WHEN {e} THEN 'true' WHEN NOT {e} THEN 'false' END").format(e=expr)
    return expr


FORMULA_START = re.compile(r"^[-=+@\t\r]")
NOT_A_NUMBER = re.compile(r"[^0-9.* ]")


def csv_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula, with a leading apostrophe; the rule of the
    database's `reporting.csv_safe`, for CSV written from Python."""
    if isinstance(value, str) and FORMULA_START.match(value) and NOT_A_NUMBER.search(value[1:]):
        return "'" + value
    return value


def csv_rows(header: list[str], rows: Iterator[list]) -> bytes:
    """A small CSV (UTF-8 with a byte order mark, as the streamed downloads) from rows held by Python."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_safe(v) for v in row])
    return CSV_BOM + out.getvalue().encode()


def tables(conn: psycopg.Connection, form: dict, where: Filter, *,
           masked: bool) -> list[tuple[str, sql.Composed, list[ReportColumn]]]:
    """(name, bound SELECT, columns) of the form's table, then one per repeat (name `<form>-<repeat>`)."""
    clauses, params = where
    condition = sql.SQL(" AND ".join(clauses))
    query, columns = form_select(conn, form["id"], masked=masked, flat=True, where=condition)
    found = [(form["slug"], bound(conn, query, params), columns)]
    for repeat in form_repeats(conn, form["id"]):
        query, columns = repeat_select(conn, form["id"], repeat, masked=masked, flat=True, where=condition)
        found.append((f"{form['slug']}-{repeat['key']}", bound(conn, query, params), columns))
    return found


def _csv_table(conn: psycopg.Connection, query: sql.Composed, columns: list[ReportColumn]) -> Iterator[bytes]:
    outer = sql.SQL("SELECT {} FROM ({}) s").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(_csv_cell(c, sql.Identifier("s", c.name)), sql.Identifier(c.name))
                           for c in columns), query)
    yield CSV_BOM
    with conn.cursor() as cur:
        with cur.copy(sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER true)").format(outer)) as copy:
            for chunk in copy:
                yield bytes(chunk)


def csv_chunks(conn: psycopg.Connection, form: dict, where: Filter, *, masked: bool) -> tuple[str, Iterator[bytes]]:
    """(media type, body chunks): the CSV in the chunks PostgreSQL sends, or, for a form with repeats, a zip
    of one CSV for the form and one per repeat (keyed by submission id and index)."""
    found = tables(conn, form, where, masked=masked)
    if len(found) == 1:
        return "text/csv", _csv_table(conn, found[0][1], found[0][2])
    archive = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as book:
        for name, query, columns in found:
            with book.open(f"{name}.csv", "w") as entry:
                for chunk in _csv_table(conn, query, columns):
                    entry.write(chunk)
    archive.seek(0)
    return "application/zip", _drain(archive)


def _drain(spooled) -> Iterator[bytes]:
    with spooled:
        yield from iter(lambda: spooled.read(64 * 1024), b"")


def _cell(column: ReportColumn, value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if column.sql_type == "uuid":
        return str(value)
    return value


def xlsx_chunks(conn: psycopg.Connection, form: dict, where: Filter, *, masked: bool,
                batch: int = 5000) -> Iterator[bytes]:
    """The workbook (a sheet for the form, one per repeat), built in a spooled temporary file, then streamed."""

    def rows(query: sql.Composed, columns: list[ReportColumn]):
        # Sheets are written one after another, so one cursor name serves them all.
        with conn.cursor(name="xlsx_export", row_factory=psycopg.rows.tuple_row) as cur:
            cur.execute(query)
            while chunk := cur.fetchmany(batch):
                for row in chunk:
                    yield [_cell(c, v) for c, v in zip(columns, row)]

    out = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    write_workbook(out, [(name[:31], columns, rows(query, columns))
                         for name, query, columns in tables(conn, form, where, masked=masked)])
    out.seek(0)
    return _drain(out)

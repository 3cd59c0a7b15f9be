"""Downloads of a form's responses as CSV or XLSX: streamed, filtered as the listing is, masked by role.

CSV is PostgreSQL's own `COPY ... TO STDOUT` of `columns.form_select` (flat flavour), passed through in the
chunks the server sends, so a million rows never sit in memory; a UTF-8 byte order mark leads so that
spreadsheet programs read Devanagari as such. A text cell that a spreadsheet would run as a formula (it
starts with = + - @ or a tab and holds more than digits, dots, stars and spaces) gets a leading apostrophe.

XLSX is written by openpyxl's write-only workbook into a spooled temporary file (a zip cannot be streamed
before it is complete), with typed cells, a frozen bold header, filters and sensible widths.

The ETag is a digest of what the rows are made of (the form's version, the matching responses' count and
latest change, the form's latest flag change), the filters, the masking and the format: an unchanged
export answers 304 without reading a row.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import tempfile
from typing import Iterator

import psycopg
from psycopg import sql

from fieldpipe.reporting.columns import ReportColumn, form_select
from fieldpipe.reporting.workbook import write_sheet

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


def _select(conn: psycopg.Connection, form: dict, where: Filter, masked: bool) -> tuple[sql.Composed, list]:
    clauses, params = where
    query, columns = form_select(conn, form["id"], masked=masked, flat=True, where=sql.SQL(" AND ".join(clauses)))
    # COPY takes no server-side parameters: bind them client-side (the generated SQL holds no other %).
    return sql.SQL(psycopg.ClientCursor(conn).mogrify(query, params)), columns


def csv_chunks(conn: psycopg.Connection, form: dict, where: Filter, *, masked: bool) -> Iterator[bytes]:
    """The CSV file in the chunks PostgreSQL sends: header first, then one line per response."""
    query, columns = _select(conn, form, where, masked)
    outer = sql.SQL("SELECT {} FROM ({}) s").format(
        sql.SQL(", ").join(sql.SQL("{} AS {}").format(_csv_cell(c, sql.Identifier("s", c.name)), sql.Identifier(c.name))
                           for c in columns), query)
    copy_sql = sql.SQL("COPY ({}) TO STDOUT (FORMAT csv, HEADER true)").format(outer)
    yield CSV_BOM
    with conn.cursor() as cur:
        with cur.copy(copy_sql) as copy:
            for chunk in copy:
                yield bytes(chunk)


def _cell(column: ReportColumn, value):
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if column.sql_type == "uuid":
        return str(value)
    return value


def xlsx_file(conn: psycopg.Connection, form: dict, where: Filter, *, masked: bool, batch: int = 5000):
    """A spooled temporary file holding the workbook, rewound; the caller streams and closes it."""
    query, columns = _select(conn, form, where, masked)

    def rows():
        with conn.cursor(name="xlsx_export", row_factory=psycopg.rows.tuple_row) as cur:
            cur.execute(query)
            while chunk := cur.fetchmany(batch):
                for row in chunk:
                    yield [_cell(c, v) for c, v in zip(columns, row)]

    out = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)
    write_sheet(out, form["slug"][:31], columns, rows())
    out.seek(0)
    return out

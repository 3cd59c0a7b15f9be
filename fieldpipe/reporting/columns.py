"""One SELECT per form that every reporting output reads: typed columns, masked where the question says.

The reporting views, the Parquet archives and the CSV/XLSX downloads all read a form's responses through
`form_select`, so a question's SQL type and its masking are decided once, in SQL, for every output:

- metadata first (submission id, times, collector, revision, open flags), then one column per question in
  the order questions first appeared across all the form's versions (`sheets.layout.question_columns`);
- integer and decimal answers are `numeric` (exact at any size), dates `date`, booleans `boolean`,
  multi-choice `text[]` (or "a, b" text where the output is flat), anything else `text`;
- masked (`masked=True`): a question whose mask is `partial` shows a phone as +91******3210 and an email as
  a***@example.org; `hash` shows a 16-hex pseudonym of the value; `drop` (the default mask of every other
  type) shows nothing. The collector's phone is always `partial`. The functions are in migration 0013.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from fieldpipe.answers import NUMBER_TYPES, mask_mode
from fieldpipe.sheets.layout import ANSWER_PREFIX, PART_SEPARATOR, question_columns



@dataclass(frozen=True)
class ReportColumn:
    name: str
    sql_type: str  # the column's SQL type in the typed (view, Parquet) flavour
    label: str
    question_type: str | None = None  # None for metadata columns


METADATA = (
    ReportColumn("submission_id", "uuid", "Submission ID"),
    ReportColumn("submitted_at", "timestamptz", "Submitted at (UTC)"),
    ReportColumn("received_at", "timestamptz", "Received at (UTC)"),
    ReportColumn("collector_id", "text", "Collector"),
    ReportColumn("collector_phone", "text", "Collector phone"),
    ReportColumn("form_version", "integer", "Form version"),
    ReportColumn("revision", "integer", "Revision"),
    ReportColumn("open_flags", "integer", "Open flags"),
)

_SQL_TYPES = {"integer": "numeric", "decimal": "numeric", "boolean": "boolean", "date": "date",
              "multi_choice": "text[]"}


def _versions(conn: psycopg.Connection, form_id: int) -> list[list[dict]]:
    return [r["questions"] for r in conn.execute(
        "SELECT questions FROM form_versions WHERE form_id = %s ORDER BY version", (form_id,))]


def _answer(answers: sql.Composable, column_key: str) -> tuple[sql.Composable, sql.Composable]:
    """(jsonb, text) of the answer a column shows; "gps#latitude" is one part of the geopoint `gps`."""
    key, _, part = column_key.partition(PART_SEPARATOR)
    value = sql.SQL("({} -> {})").format(answers, sql.Literal(key))
    if part:
        return sql.SQL("({} -> {})").format(value, sql.Literal(part)), sql.SQL("({} ->> {})").format(value, sql.Literal(part))
    return value, sql.SQL("({} ->> {})").format(answers, sql.Literal(key))


def _typed_answer(answers: sql.Composable, key: str, qtype: str, flat: bool) -> sql.Composable:
    value, text = _answer(answers, key)
    if qtype in NUMBER_TYPES:
        return sql.SQL("CASE WHEN jsonb_typeof({v}) = 'number' THEN {t}::numeric END").format(v=value, t=text)
    if qtype == "boolean":
        return sql.SQL("CASE WHEN jsonb_typeof({v}) = 'boolean' THEN {t}::boolean END").format(v=value, t=text)
    if qtype == "date":
        return sql.SQL(r"CASE WHEN {t} ~ '^\d{{4}}-\d{{2}}-\d{{2}}$' THEN {t}::date END").format(t=text)
    if qtype == "multi_choice":
        elements = sql.SQL("ARRAY(SELECT jsonb_array_elements_text({v}))").format(v=value)
        listed = sql.SQL("array_to_string({e}, ', ')").format(e=elements) if flat else elements
        return sql.SQL("CASE WHEN jsonb_typeof({v}) = 'array' THEN {l} END").format(v=value, l=listed)
    return sql.SQL("CASE WHEN jsonb_typeof({v}) IN ('object', 'array') THEN {v}::text ELSE {t} END").format(
        v=value, t=text)


def _masked_answer(answers: sql.Composable, key: str, qtype: str, mode: str) -> tuple[sql.Composable, str]:
    """(expression, SQL type) of a masked answer: a masked value is text, or NULL when dropped."""
    text = sql.SQL("nullif({}, '')").format(_answer(answers, key)[1])
    if mode == "partial" and qtype == "phone":
        return sql.SQL("reporting.mask_phone({})").format(text), "text"
    if mode == "partial" and qtype == "email":
        return sql.SQL("reporting.mask_email({})").format(text), "text"
    if mode == "hash":
        return sql.SQL("reporting.pseudonym({})").format(text), "text"
    return sql.SQL("NULL::text"), "text"


def _question_columns(answers: sql.Composable, questions: list, *, masked: bool,
                      flat: bool) -> tuple[list[sql.Composable], list[ReportColumn]]:
    exprs, columns = [], []
    for column in questions:
        key = column.key[len(ANSWER_PREFIX):]
        mode = column.mask if masked else None
        if mode:
            expr, sql_type = _masked_answer(answers, key, column.type, mode)
        else:
            expr = _typed_answer(answers, key, column.type, flat)
            sql_type = "text" if flat and column.type == "multi_choice" else _SQL_TYPES.get(column.type, "text")
        columns.append(ReportColumn(key, sql_type, column.label, column.type))
        exprs.append(expr)
    return exprs, columns


def _select(exprs: list[sql.Composable], columns: list[ReportColumn], source: sql.Composable, form_id: int,
            where: sql.Composable | None, order: sql.Composable | None) -> sql.Composed:
    return sql.SQL("SELECT {cols} FROM {source} WHERE r.form_id = {form_id}{where}{order}").format(
        cols=sql.SQL(", ").join(sql.SQL("{} AS {}").format(e, sql.Identifier(c.name)) for e, c in zip(exprs, columns)),
        source=source, form_id=sql.Literal(form_id),
        where=sql.SQL(" AND ({})").format(where) if where is not None else sql.SQL(""),
        order=sql.SQL(" ORDER BY {}").format(order) if order is not None else sql.SQL(""))


def form_select(conn: psycopg.Connection, form_id: int, *, masked: bool, flat: bool = False,
                where: sql.Composable | None = None, order: bool = True) -> tuple[sql.Composed, list[ReportColumn]]:
    """The SELECT of a form's responses at their latest revision, and its columns in order.

    `flat` renders multi-choice answers as "a, b" (CSV, XLSX); `where` adds conditions on `r` (responses).
    """
    columns = list(METADATA)
    phone = sql.SQL("reporting.mask_phone(r.collector_phone)") if masked else sql.SQL("r.collector_phone")
    exprs: list[sql.Composable] = [
        sql.SQL("r.submission_id"), sql.SQL("r.submitted_at"), sql.SQL("r.received_at"), sql.SQL("r.collector_id"),
        phone, sql.SQL("v.version"), sql.SQL("r.revision"),
        sql.SQL("coalesce(open_flags.n, 0)"),
    ]
    answers, more = _question_columns(sql.SQL("r.answers"), question_columns(_versions(conn, form_id)),
                                      masked=masked, flat=flat)
    # Counted once per form and hash-joined: a subquery per row costs an index probe per response.
    source = sql.SQL(
        "responses r JOIN form_versions v ON v.id = r.form_version_id LEFT JOIN "
        "(SELECT response_id, count(*)::integer AS n FROM flags WHERE form_id = {form_id} AND status = 'open' "
        "GROUP BY response_id) open_flags ON open_flags.response_id = r.id").format(form_id=sql.Literal(form_id))
    query = _select(exprs + answers, columns + more, source, form_id, where,
                    sql.SQL("r.received_at, r.id") if order else None)
    return query, columns + more


def repeat_select(conn: psycopg.Connection, form_id: int, repeat: dict, *, masked: bool, flat: bool = False,
                  where: sql.Composable | None = None) -> tuple[sql.Composed, list[ReportColumn]]:
    """One row per item of a repeat: the submission id, the item's 1-based index, then its questions."""
    columns = [ReportColumn("submission_id", "uuid", "Submission ID"), ReportColumn("index", "integer", "Index")]
    exprs = [sql.SQL("r.submission_id"), sql.SQL("item.index::integer")]
    answers, more = _question_columns(sql.SQL("item.answers"), question_columns([repeat["questions"]]),
                                      masked=masked, flat=flat)
    source = sql.SQL("responses r CROSS JOIN LATERAL jsonb_array_elements(CASE jsonb_typeof(r.answers -> {key}) "
                     "WHEN 'array' THEN r.answers -> {key} ELSE '[]' END) WITH ORDINALITY AS item(answers, index)"
                     ).format(key=sql.Literal(repeat["key"]))
    return _select(exprs + answers, columns + more, source, form_id, where,
                   sql.SQL("r.received_at, r.id, item.index")), columns + more


def bound(conn: psycopg.Connection, query: sql.Composable, params) -> sql.Composed:
    """The query with its parameters bound client-side, for COPY and ADBC, which take none of their own (the
    generated SQL holds no other %)."""
    return sql.SQL(psycopg.ClientCursor(conn).mogrify(query, params))

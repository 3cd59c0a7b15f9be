"""Daily Parquet partitions of each form's responses in object storage, masked as the reporting views are.

A partition holds the responses *received* on one UTC day, at their latest revision when the run reads
them: `<org>/<form>/dt=YYYY-MM-DD/part.parquet`. Writing one replaces it whole, so a rerun or a backfill is
idempotent, and the file is byte-identical when nothing in it changed (rows in received order, fixed writer
settings, no timestamps in the file's metadata). A day's run rewrites the partitions of that day and of
every earlier day whose responses were edited that day, so an edit reaches its partition the next day.

Schema evolution: a partition's columns are those of `columns.form_select` when it was written: every
question the form ever had, in the order they first appeared. A question added by a later version is a new
column at the end of later partitions (older ones lack it); a removed question keeps its column. Readers
that unify schemas by column name (pyarrow.dataset, DuckDB's union_by_name, Spark's mergeSchema) read the
whole history as one table.

Rows stream from a server-side cursor into the Parquet writer in batches: memory is bounded by the batch.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from dataclasses import dataclass, field

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from fieldpipe.objectstore import ObjectStore
from fieldpipe.reporting.columns import ReportColumn, form_select

log = logging.getLogger("fieldpipe.reporting")

BATCH_ROWS = 50_000
_ARROW_TYPES = {
    "uuid": pa.string(), "timestamptz": pa.timestamp("us", tz="UTC"), "integer": pa.int32(), "text": pa.string(),
    "boolean": pa.bool_(), "date": pa.date32(), "text[]": pa.list_(pa.string()),
}
# Cast in SQL so that rows arrive as cheap Python values (str, int, float) rather than UUID and Decimal.
_SQL_CASTS = {"uuid": "text", "numeric": "float8"}


def partition_key(org_slug: str, form_slug: str, day: dt.date) -> str:
    return f"{org_slug}/{form_slug}/dt={day.isoformat()}/part.parquet"


def _arrow_type(column: ReportColumn) -> pa.DataType:
    if column.sql_type == "numeric":
        return pa.int64() if column.question_type == "integer" else pa.float64()
    return _ARROW_TYPES[column.sql_type]


def _cast(column: ReportColumn) -> sql.Composable:
    ident = sql.Identifier("s", column.name)
    if column.sql_type == "numeric" and column.question_type == "integer":
        return sql.SQL("{}::bigint").format(ident)
    cast = _SQL_CASTS.get(column.sql_type)
    return sql.SQL("{}::{}").format(ident, sql.SQL(cast)) if cast else ident


def write_partition(conn: psycopg.Connection, form_id: int, day: dt.date) -> tuple[bytes, int]:
    """(Parquet file, row count) of the form's responses received on `day` (UTC), masked."""
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    where = sql.SQL("r.received_at >= {} AND r.received_at < {}").format(
        sql.Literal(start), sql.Literal(start + dt.timedelta(days=1)))
    inner, columns = form_select(conn, form_id, masked=True, where=where)
    query = sql.SQL("SELECT {} FROM ({}) s").format(
        sql.SQL(", ").join(_cast(c) for c in columns), inner)
    schema = pa.schema([pa.field(c.name, _arrow_type(c)) for c in columns])
    out = io.BytesIO()
    rows = 0
    # A server-side cursor lives in a transaction (a savepoint when the caller has one open).
    with pq.ParquetWriter(out, schema, compression="zstd", write_statistics=True) as writer, conn.transaction():
        with conn.cursor(name=f"archive_{form_id}", row_factory=psycopg.rows.tuple_row) as cur:
            cur.execute(query)
            while batch := cur.fetchmany(BATCH_ROWS):
                arrays = [pa.array(values, type=f.type) for values, f in zip(zip(*batch), schema)]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
                rows += len(batch)
    return out.getvalue(), rows


@dataclass
class ArchiveReport:
    day: dt.date
    written: list[str] = field(default_factory=list)
    rows: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "org/form" -> error class and where

    def summary(self) -> str:
        return (f"archive {self.day.isoformat()}: {len(self.written)} partition(s), {self.rows} row(s) written, "
                f"{len(self.failed)} form(s) failed" + (f": {', '.join(sorted(self.failed))}" if self.failed else ""))


def partitions_touched(conn: psycopg.Connection, day: dt.date) -> list[dict]:
    """(form, partition day) pairs a run for `day` writes: responses received that day, and earlier days'
    responses edited that day."""
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    return conn.execute(
        """SELECT DISTINCT r.form_id, f.slug AS form, o.slug AS org,
                  (r.received_at AT TIME ZONE 'UTC')::date AS day
             FROM responses r
             JOIN forms f ON f.id = r.form_id
             JOIN organizations o ON o.id = f.organization_id
            WHERE (r.received_at >= %(start)s AND r.received_at < %(end)s)
               OR (r.updated_at >= %(start)s AND r.updated_at < %(end)s)
            ORDER BY o.slug, f.slug, day""",
        {"start": start, "end": start + dt.timedelta(days=1)}).fetchall()


def archive_day(conn: psycopg.Connection, store: ObjectStore, day: dt.date) -> ArchiveReport:
    """Write every partition the day touched. A form that fails is named in the report; the others land."""
    report = ArchiveReport(day)
    for part in partitions_touched(conn, day):
        name = f"{part['org']}/{part['form']}"
        try:
            data, rows = write_partition(conn, part["form_id"], part["day"])
            key = partition_key(part["org"], part["form"], part["day"])
            store.put(key, data, content_type="application/vnd.apache.parquet")
        except Exception as err:  # one form's failure must not stop the others; the error names no data
            report.failed[name] = type(err).__name__
            log.error("archive of %s for %s failed: %s", name, part["day"], type(err).__name__)
            continue
        report.written.append(key)
        report.rows += rows
        log.info("archived %s: %d row(s), %d bytes", key, rows, len(data))
    return report

"""Daily Parquet partitions of each form's responses in object storage, masked as the reporting views are.

A partition holds the responses *received* on one UTC day, at their latest revision when the run reads
them: `<org>/<form>/dt=YYYY-MM-DD/part.parquet`. Writing one replaces it whole, so a rerun or a backfill is
idempotent, and the file is byte-identical when nothing in it changed (rows in received order, fixed writer
settings, no timestamps in the file's metadata). A day's run rewrites the partitions of that day and of
every earlier day whose responses were edited that day, so an edit reaches its partition the next day.

A form's `archive` task (docs/tasks.md) configures it: without one the form is archived whole; a disabled one
stops its archive; its `exclude` leaves those questions out of the files written from then on.

Schema evolution: a partition's columns are those of `columns.form_select` when it was written: every
question the form ever had, in the order they first appeared. A question added by a later version is a new
column at the end of later partitions (older ones lack it); a removed question keeps its column. Readers
that unify schemas by column name (pyarrow.dataset, DuckDB's union_by_name, Spark's mergeSchema) read the
whole history as one table.

A big partition is read in slices of time, a few at a time on their own connections (the masked SELECT costs the
database more than anything else, so slices use every core), through ADBC's PostgreSQL driver, which turns
PostgreSQL's binary COPY into Arrow without a Python object per value. Slices are written in order as row
groups, so the file is the same whatever finishes first; memory is bounded by the slices in flight.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from collections import deque
from collections.abc import Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO

import adbc_driver_postgresql.dbapi as adbc
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg import sql

from fieldpipe.db import connect
from fieldpipe.objectstore import ObjectStore
from fieldpipe.reporting.columns import ReportColumn, bound, form_select

log = logging.getLogger("fieldpipe.reporting")

MAX_SLICES = 24  # hours of a day, at most
SLICE_ROWS = 40_000  # a smaller day is one slice: a slice costs a connection and a query plan
SPOOL_BYTES = 16 * 1024 * 1024  # a partition larger than this is written to a temporary file before upload
_ARROW_TYPES = {
    "uuid": pa.string(), "timestamptz": pa.timestamp("us", tz="UTC"), "integer": pa.int32(), "text": pa.string(),
    "boolean": pa.bool_(), "date": pa.date32(), "text[]": pa.list_(pa.string()),
}
# Cast in SQL to types with a plain Arrow twin (ADBC hands numeric over as text and uuid as bytes).
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


def _slice_queries(conn: psycopg.Connection, form_id: int, day: dt.date,
                   exclude: Collection[str] = ()) -> tuple[list[str], pa.Schema]:
    """The masked SELECTs of `day` (UTC) in equal slices of time, one per `SLICE_ROWS` rows the day holds
    (at most `MAX_SLICES`), and the Arrow schema they share; the questions in `exclude` are left out."""
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    held = conn.execute("SELECT count(*) AS n FROM responses WHERE form_id = %s AND received_at >= %s "
                        "AND received_at < %s", (form_id, start, start + dt.timedelta(days=1))).fetchone()["n"]
    slices = max(1, min(MAX_SLICES, -(-held // SLICE_ROWS)))
    step = dt.timedelta(days=1) / slices
    # One SELECT for the form (its versions read once), bound to each slice's hours.
    inner, columns = form_select(conn, form_id, masked=True,
                                 where=sql.SQL("r.received_at >= %(lo)s AND r.received_at < %(hi)s"))
    columns = [c for c in columns if c.question_type is None or c.name not in exclude]
    query = sql.SQL("SELECT {} FROM ({}) s").format(sql.SQL(", ").join(_cast(c) for c in columns), inner)
    queries = [bound(conn, query, {"lo": start + n * step, "hi": start + (n + 1) * step}).as_string(conn)
               for n in range(slices)]
    return queries, pa.schema([pa.field(c.name, _arrow_type(c)) for c in columns])


def _fetch(database_url: str, query: str) -> pa.Table:
    with adbc.connect(database_url) as connection, connection.cursor() as cur:
        cur.execute(query)
        return cur.fetch_arrow_table()


def _in_order(pool: ThreadPoolExecutor, workers: int, database_url: str, queries: list[str]) -> Iterator[pa.Table]:
    """Each query's table in the order given, with at most one more query in flight than there are workers."""
    pending: deque[Future] = deque()
    for query in queries:
        pending.append(pool.submit(_fetch, database_url, query))
        if len(pending) > workers:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def write_partition(database_url: str, form_id: int, day: dt.date, out: IO[bytes], workers: int = 2,
                    exclude: Collection[str] = ()) -> int:
    """Write to `out` the Parquet file of the form's responses received on `day` (UTC), masked, without the
    questions in `exclude`; return its row count."""
    with connect(database_url) as conn:
        queries, schema = _slice_queries(conn, form_id, day, exclude)
    rows = 0
    with pq.ParquetWriter(out, schema, compression="zstd", write_statistics=True) as writer, \
            ThreadPoolExecutor(workers, thread_name_prefix="archive") as pool:
        for table in _in_order(pool, workers, database_url, queries):
            if table.num_rows:
                # The driver's schema carries PostgreSQL type names as field metadata: keep the file's plain.
                writer.write_table(table.cast(schema))
                rows += table.num_rows
    return rows


@dataclass
class ArchiveReport:
    day: dt.date
    written: list[str] = field(default_factory=list)
    rows: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "org/form" -> error class and where

    def summary(self) -> str:
        return (f"archive {self.day.isoformat()}: {len(self.written)} partition(s), {self.rows} row(s) written, "
                f"{len(self.failed)} form(s) failed" + (f": {', '.join(sorted(self.failed))}" if self.failed else ""))


# A form's archive task (docs/tasks.md) configures its archive: none, archived whole (masked); disabled, not
# archived; `exclude`, those questions left out of its files.
ARCHIVE_KIND = "archive"


def partitions_touched(conn: psycopg.Connection, day: dt.date) -> list[dict]:
    """(form, partition day) pairs a run for `day` writes: responses received that day, and earlier days'
    responses edited that day; each with the questions its archive task leaves out (`exclude`)."""
    start = dt.datetime.combine(day, dt.time(), dt.timezone.utc)
    return conn.execute(
        """SELECT p.*, coalesce((SELECT array_agg(x) FROM jsonb_array_elements_text(t.config -> 'exclude') x),
                                '{}') AS exclude
             FROM (SELECT DISTINCT r.form_id, f.slug AS form, o.slug AS org,
                          (r.received_at AT TIME ZONE 'UTC')::date AS day
                     FROM responses r
                     JOIN forms f ON f.id = r.form_id
                     JOIN organizations o ON o.id = f.organization_id
                    WHERE (r.received_at >= %(start)s AND r.received_at < %(end)s)
                       OR (r.updated_at >= %(start)s AND r.updated_at < %(end)s)) p
             LEFT JOIN LATERAL (SELECT enabled, config FROM form_tasks
                                 WHERE form_id = p.form_id AND kind = %(kind)s ORDER BY id LIMIT 1) t ON true
            WHERE t.enabled IS DISTINCT FROM false
            ORDER BY p.org, p.form, p.day""",
        {"start": start, "end": start + dt.timedelta(days=1), "kind": ARCHIVE_KIND}).fetchall()


def archive_day(database_url: str, store: ObjectStore, day: dt.date, workers: int = 2) -> ArchiveReport:
    """Write every partition the day touched. A form that fails is named in the report; the others land.

    `workers`: connections reading one partition's slices at once (about the database server's cores).
    """
    report = ArchiveReport(day)
    with connect(database_url) as conn:
        parts = partitions_touched(conn, day)
    for part in parts:
        name = f"{part['org']}/{part['form']}"
        try:
            # A day of a big form is hundreds of MB: spooled to disk and uploaded in parts, never whole in memory.
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as data:
                rows = write_partition(database_url, part["form_id"], part["day"], data, workers, part["exclude"])
                size = data.tell()
                data.seek(0)
                key = partition_key(part["org"], part["form"], part["day"])
                store.put(key, data, content_type="application/vnd.apache.parquet")
        except Exception as err:  # one form's failure must not stop the others; the error names no data
            report.failed[name] = type(err).__name__
            log.error("archive of %s for %s failed: %s", name, part["day"], type(err).__name__)
            continue
        report.written.append(key)
        report.rows += rows
        log.info("archived %s: %d row(s), %d bytes", key, rows, size)
    return report

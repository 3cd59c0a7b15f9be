"""Imports as rows in PostgreSQL: registered once per stored file, run chunk by chunk, reported.

Object storage layout, per organization and form: `<org>/<form>/incoming/<file>` is where files wait
(dropped there, or put there by an upload); at the end the file moves to `processed/<file>` (or
`failed/<file>` when it was refused) with its report beside it as `<file>.report.json`.

A run commits each chunk's responses, its invalid rows' errors and the import's counts in one
transaction, so a run killed mid-file resumes after its last committed chunk; a row committed twice
would in any case be a duplicate, never a second response, since its submission id is fixed by the
row (its `submission_id` cell, or the file's hash and the row number).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import logging
import re
import sys
import tempfile
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Any, Iterator

import psycopg

from fieldpipe import paging, responses
from fieldpipe.domains import json_value
from fieldpipe.forms import get_form_row
from fieldpipe.imports import INCOMING_KEY_PATTERN
from fieldpipe.imports.columns import RowReader, column_of, map_header
from fieldpipe.imports.files import Refused, Spooled, open_rows, spool
from fieldpipe.problems import not_found

log = logging.getLogger(__name__)

STATUSES = ("queued", "running", "done", "failed")
LIVE = ("queued", "running")
CHUNK_ROWS = 5000
SWITCH_INTERVAL = 0.0005  # seconds a thread holds the GIL while another waits for it (Python's default: 0.005)
# A new response adds about a dozen entries to the two GIN indexes of responses (answers, search words). They
# wait in each index's pending list, which the inserting statement merges into the index once the list passes
# gin_pending_list_limit (4 MB by default: every fifth chunk or so). An import's chunks let it grow to 32 MB:
# merging fewer, longer lists saves PostgreSQL about 7 of its 53 us per imported row. The last chunk runs with
# the server's limit, so its insert merges what is left, as any insert would, and searches after the import
# do not scan a long pending list.
LONGER_GIN_PENDING_LIST = "SET LOCAL gin_pending_list_limit = '32MB'"
MAX_ATTEMPTS = 5  # a file whose runs keep crashing is failed on purpose rather than retried for ever
API_ERRORS_SHOWN = 1000
INCOMING = re.compile(INCOMING_KEY_PATTERN)
COUNTS = ("rows", "created", "duplicate", "conflict", "invalid")
IMPORTS = paging.Keyset("imports", dt.datetime, str)  # ORDER BY created_at, id


def incoming_key(org_slug: str, form_slug: str, file_name: str) -> str:
    return f"{org_slug}/{form_slug}/incoming/{file_name}"


def register(conn: psycopg.Connection, org_slug: str, form_slug: str, file_name: str, object_key: str,
             source: str) -> dict:
    """The live import of the file at `object_key`, created (queued) unless one exists; not committed."""
    row = conn.execute(
        """INSERT INTO imports (id, organization_id, form_id, org_slug, form_slug, file_name, source, object_key)
           SELECT %(id)s, o.id, f.id, %(org)s, %(form)s, %(name)s, %(source)s, %(key)s
             FROM (SELECT 1) AS one
             LEFT JOIN organizations o ON o.slug = %(org)s
             LEFT JOIN forms f ON f.organization_id = o.id AND f.slug = %(form)s
           ON CONFLICT (object_key) WHERE status IN ('queued', 'running') DO NOTHING
           RETURNING *""",
        {"id": uuid.uuid4(), "org": org_slug, "form": form_slug, "name": file_name, "source": source, "key": object_key},
    ).fetchone()
    return row or conn.execute(
        "SELECT * FROM imports WHERE object_key = %s AND status IN ('queued', 'running')", (object_key,)).fetchone()


def claim_incoming(conn: psycopg.Connection, store) -> list[uuid.UUID]:
    """Register every file waiting under an `incoming/` prefix; return the live imports, oldest first."""
    waiting = 0
    for info in store.list(""):
        match = INCOMING.fullmatch(info.key)
        if match:
            register(conn, match["org"], match["form"], match["name"], info.key, "s3")
            waiting += 1
    conn.commit()
    live = [r["id"] for r in conn.execute(
        "SELECT id FROM imports WHERE status IN ('queued', 'running') ORDER BY created_at, id")]
    log.info("%d file(s) waiting under incoming/, %d import(s) to run", waiting, len(live))
    return live


def run_import(conn: psycopg.Connection, store, import_id: uuid.UUID | str,
               chunk_rows: int = CHUNK_ROWS) -> dict | None:
    """Run an import to its end (or resume it) and return its report; None when another process runs it."""
    lock = "SELECT {}(hashtextextended(%s, 0)) AS ok"
    if not conn.execute(lock.format("pg_try_advisory_lock"), (str(import_id),)).fetchone()["ok"]:
        conn.commit()
        return None
    try:
        job = conn.execute(
            """UPDATE imports SET status = 'running', attempts = attempts + 1, started_at = coalesce(started_at, now()),
                      updated_at = now()
                WHERE id = %s AND status IN ('queued', 'running') RETURNING *""",
            (import_id,),
        ).fetchone()
        conn.commit()
        if job is None:
            return report(conn, import_id)
        with tempfile.TemporaryDirectory(prefix="fieldpipe-import-") as folder:
            spooled = etag = None
            try:
                if job["attempts"] > MAX_ATTEMPTS:
                    raise Refused("gave_up", f"{MAX_ATTEMPTS} runs of this import failed; see the import_responses "
                                             "task logs, then upload or drop the file again")
                if job["form_id"] is None:
                    raise Refused("unknown_form", f"organization {job['org_slug']!r} has no form {job['form_slug']!r}")
                info = store.head(job["object_key"])
                if info is None:
                    if store.head(_final_key(job, "processed")) or store.head(_final_key(job, "failed")):
                        return _finish(conn, store, job["id"], None, None)  # moved by a run killed just after
                    raise Refused("missing_file", "the file is no longer in object storage")
                etag = info.etag
                with store.open(job["object_key"]) as stream:
                    spooled = spool(stream, Path(folder), job["file_name"])
                _import_rows(conn, job, spooled, chunk_rows)
            except Refused as refusal:
                conn.rollback()
                _record_refusal(conn, job["id"], refusal)
            return _finish(conn, store, job["id"], spooled, etag)
    finally:
        conn.rollback()
        conn.execute(lock.format("pg_advisory_unlock"), (str(import_id),))
        conn.commit()


def _import_rows(conn: psycopg.Connection, job: dict, spooled: Spooled, chunk_rows: int) -> None:
    if job["content_hash"] is None:
        conn.execute("UPDATE imports SET content_hash = %s WHERE id = %s", (spooled.sha256, job["id"]))
        conn.commit()
    elif job["content_hash"] != spooled.sha256:
        raise Refused("file_changed", "the file was replaced while it was being imported; drop or upload it again")
    form = get_form_row(conn, job["organization_id"], job["form_slug"])
    receipts = (form["settings"].get("imports") or {}).get("receipts", True)
    with open_rows(spooled) as (header, rows):
        if not header:
            log.info("import %s: %s is empty", job["id"], job["file_name"])
            return
        reader = RowReader(map_header(header, form["questions"]), form["questions"], spooled.sha256)
        if job["rows"]:
            log.info("import %s: resuming after row %d", job["id"], job["rows"])
        versions = responses.FormVersions(conn, form)
        # Checking and encoding a chunk (Python, this thread) overlaps storing the one before it (PostgreSQL,
        # waited on by one writer thread, which holds the GIL only briefly): chunks are stored in order, and
        # at most one beyond the last committed one is in flight.
        with _import_pacing(chunk_rows), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="import-writer") as writer:
            stored = None
            for chunk, last in _chunks(islice(rows, job["rows"], None), chunk_rows):
                numbers = [number for number, _ in chunk]
                outcomes, valid = responses.judge(versions, [reader.submission(cells, number)
                                                             for number, cells in chunk])
                document = responses.insert_document([sub for _, sub in valid])
                if stored is not None:
                    stored.result()
                stored = writer.submit(_commit_chunk, conn, job, form, numbers, outcomes, valid, document, receipts,
                                       last)
            if stored is not None:
                stored.result()


@contextmanager
def _import_pacing(chunk_rows: int) -> Iterator[None]:
    """Python's cyclic garbage collector run about once per chunk rather than every 700 new objects: the
    chunks' rows (plain dicts and lists, no cycles) would otherwise be walked again and again, which took a
    third of the import's Python time. And the GIL handed over within a millisecond rather than five: the
    writer thread needs it for a moment after each statement, while this thread checks the next chunk."""
    thresholds, switch_interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(max(thresholds[0], chunk_rows * 20), *thresholds[1:])
    sys.setswitchinterval(min(switch_interval, SWITCH_INTERVAL))
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch_interval)


def _chunks(rows: Iterator, size: int) -> Iterator[tuple[list, bool]]:
    """The rows in lists of `size`, each with whether it is the last."""
    chunk = list(islice(rows, size))
    while chunk:
        following = list(islice(rows, size))
        yield chunk, not following
        chunk = following


def _commit_chunk(conn: psycopg.Connection, job: dict, form: dict, numbers: list[int],
                  outcomes: list[responses.Outcome], valid: list, document, receipts: bool, last: bool) -> None:
    """Store a chunk (`document`: its valid submissions encoded), its errors and the new counts in one transaction."""
    if not last:
        conn.execute(LONGER_GIN_PENDING_LIST)
    responses.settle(conn, form, outcomes, valid, send_receipts=receipts, records=False, document=document)
    counts = Counter(outcome.status for outcome in outcomes)
    errors = [(job["id"], number, column_of(error), error.code, error.message)
              for number, outcome in zip(numbers, outcomes) for error in outcome.errors]
    if errors:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO import_errors (import_id, row_number, column_name, code, reason)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""", errors)
    totals = conn.execute(
        """UPDATE imports SET rows = rows + %s, created = created + %s, duplicate = duplicate + %s,
                  conflict = conflict + %s, invalid = invalid + %s, updated_at = now()
            WHERE id = %s RETURNING rows, created, duplicate, conflict, invalid""",
        (len(numbers), counts["created"], counts["duplicate"], counts["conflict"], counts["invalid"], job["id"]),
    ).fetchone()
    conn.commit()
    log.info("import %s: %d rows done: %d created, %d duplicate, %d conflict, %d invalid",
             job["id"], *(totals[k] for k in COUNTS))


def _record_refusal(conn: psycopg.Connection, import_id: uuid.UUID, refusal: Refused) -> None:
    conn.execute("UPDATE imports SET code = %s, reason = %s, updated_at = now() WHERE id = %s",
                 (refusal.code, refusal.reason, import_id))
    if refusal.errors:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO import_errors (import_id, row_number, column_name, code, reason)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                [(import_id, *error) for error in refusal.errors])
    conn.commit()
    log.warning("import %s refused: %s (%s)", import_id, refusal.reason, refusal.code)


def _final_key(job: dict, folder: str) -> str:
    return f"{job['org_slug']}/{job['form_slug']}/{folder}/{job['file_name']}"


def _finish(conn: psycopg.Connection, store, import_id: uuid.UUID, spooled: Spooled | None,
            etag: str | None) -> dict:
    """Write the report next to where the file ends, move the file there, then mark the import finished."""
    job = conn.execute("SELECT * FROM imports WHERE id = %s", (import_id,)).fetchone()
    status = "failed" if job["code"] else "done"
    stored_at = job["object_key"]
    final_key = _final_key(job, "processed" if status == "done" else "failed")
    job = conn.execute(
        """UPDATE imports SET status = %s, finished_at = now(), updated_at = now(), object_key = %s, report_key = %s
            WHERE id = %s RETURNING *""",
        (status, final_key, final_key + ".report.json", import_id),
    ).fetchone()
    with tempfile.TemporaryFile("w+b") as body:
        _write_report(conn, job, body)
        body.seek(0)
        store.put(job["report_key"], body, content_type="application/json")
    current = store.head(stored_at) if stored_at != final_key else None
    if current is not None:
        if spooled is None or current.etag == etag:
            store.move(stored_at, final_key)
        else:  # a new file of the same name arrived meanwhile: it stays in incoming/ for an import of its own
            with open(spooled.path, "rb") as copy:
                store.put(final_key, copy)
    conn.commit()
    log.info("import %s %s: %d rows, %d created, %d duplicate, %d conflict, %d invalid; report at %s",
             import_id, status, *(job[k] for k in COUNTS), job["report_key"])
    return report(conn, import_id)


def _write_report(conn: psycopg.Connection, job: dict, out) -> None:
    """The report with every error, streamed from a server-side cursor into `out`."""
    head = json.dumps(report_body(job), default=json_value, ensure_ascii=False)
    out.write(head[:-1].encode() + b', "errors": [')
    with conn.cursor(name="import_report_errors") as cur:
        cur.execute(ERRORS_SQL, (job["id"], None))
        for index, error in enumerate(cur):
            out.write((b", " if index else b"") + json.dumps(error, ensure_ascii=False).encode())
    out.write(b"]}\n")


ERRORS_SQL = """SELECT row_number AS row, column_name AS column, code, reason FROM import_errors
                 WHERE import_id = %s ORDER BY row_number, column_name, code LIMIT %s"""


def report_body(job: dict) -> dict:
    return {
        "id": str(job["id"]), "organization": job["org_slug"], "form": job["form_slug"], "file": job["file_name"],
        "source": job["source"], "status": job["status"], "code": job["code"], "reason": job["reason"],
        **{k: job[k] for k in COUNTS},
        "object_key": job["object_key"], "report_key": job["report_key"],
        "created_at": job["created_at"], "started_at": job["started_at"], "finished_at": job["finished_at"],
    }


def report(conn: psycopg.Connection, import_id: uuid.UUID | str, errors_shown: int = API_ERRORS_SHOWN) -> dict:
    """The report as the API shows it: the first `errors_shown` errors, and whether there are more."""
    job = conn.execute("SELECT * FROM imports WHERE id = %s", (import_id,)).fetchone()
    errors = conn.execute(ERRORS_SQL, (job["id"], errors_shown + 1)).fetchall()
    return {**report_body(job), "errors": errors[:errors_shown], "errors_truncated": len(errors) > errors_shown}


def get_import(conn: psycopg.Connection, form: dict, import_id: str) -> dict:
    try:
        parsed = uuid.UUID(import_id)
    except ValueError:
        raise not_found(f"import {import_id!r}") from None
    if conn.execute("SELECT 1 FROM imports WHERE id = %s AND form_id = %s", (parsed, form["id"])).fetchone() is None:
        raise not_found(f"import {import_id!r}")
    return report(conn, parsed)


def list_imports(conn: psycopg.Connection, form: dict, page: paging.Page) -> dict:
    """A page of the form's imports, oldest first, each with its counts (its errors are in its own report)."""
    after = "AND (created_at, id) > (%s, %s::uuid)" if page.after else ""
    rows = conn.execute(
        f"SELECT * FROM imports WHERE form_id = %s {after} ORDER BY created_at, id LIMIT %s",
        (form["id"], *(page.after or ()), page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["created_at"], str(r["id"])), shape=report_body)

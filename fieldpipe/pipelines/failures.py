"""Per-form failure isolation for the pipelines that work form by form.

A form that cannot be processed is recorded in `pipeline_failures` with its reason (listed by the API at
/api/v1/pipeline-failures and printed in the task log), skipped, and tried again by the next run; the
other forms' work commits. The reason names the error's class and where it was raised, or carries our own
message for errors we raise on purpose; never an error's own text, which may quote submitted data.
A failure a retry may cure (the database or the sheet's API unreachable) is re-raised as it is, for the
task's retries, and so is one of ours marked `needs_a_person`; any other is raised as `FormFailed`. The
DAGs run forms in groups (`fieldpipe.pipelines.groups`), which let every form of the group have its turn
and then fail the task with `FormFailed` (not retried: the next run tries the form again) unless a
retry may cure one of the failures.
"""

from __future__ import annotations

import logging
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import requests

from fieldpipe import paging

log = logging.getLogger(__name__)


class FormFailed(RuntimeError):
    """One form could not be processed; recorded in pipeline_failures and retried by the next run."""


class Explained(Exception):
    """A failure we describe ourselves (never quoting submitted data); `error` names its kind."""

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error


def is_transient(err: BaseException) -> bool:
    if isinstance(err, (psycopg.OperationalError, requests.ConnectionError, requests.Timeout, TimeoutError,
                        ConnectionError)):
        return True
    status = getattr(getattr(err, "response", None), "status_code", None)
    return status is not None and (status == 429 or status >= 500)


def describe(err: BaseException) -> str:
    """The error's class and the line that raised it (in our code when possible); our own message if safe."""
    if isinstance(err, Explained):
        return str(err)
    if type(err).__module__.startswith("fieldpipe."):
        return f"{type(err).__name__}: {err}"
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "/fieldpipe/" in f.filename] or frames
    where = f" at {Path(ours[-1].filename).name}:{ours[-1].lineno} ({ours[-1].name})" if ours else ""
    return f"{type(err).__module__}.{type(err).__name__}{where}"


def record(conn: psycopg.Connection, pipeline: str, form_id: int, err: BaseException) -> str:
    """Record (or count again) the form's failure, in its own transaction; return the reason."""
    reason = describe(err)
    if not conn.autocommit:
        conn.rollback()
    with conn.transaction():
        conn.execute(
            """INSERT INTO pipeline_failures (pipeline, form_id, error, reason) VALUES (%s, %s, %s, %s)
               ON CONFLICT (pipeline, form_id) DO UPDATE
                  SET error = excluded.error, reason = excluded.reason, last_failed_at = now(),
                      failures = pipeline_failures.failures + 1""",
            # our own kind of failure, else the class name: a library's `error` attribute (gspread's APIError
            # carries the response's JSON there) is not a name, and could not even be stored
            (pipeline, form_id, err.error if isinstance(err, Explained) else type(err).__name__, reason))
    log.error("%s: form %s failed and is skipped until the next run: %s", pipeline, form_id, reason)
    return reason


def clear(conn: psycopg.Connection, pipeline: str, form_id: int) -> None:
    with conn.transaction():
        conn.execute("DELETE FROM pipeline_failures WHERE pipeline = %s AND form_id = %s", (pipeline, form_id))


@contextmanager
def isolated(conn: psycopg.Connection, pipeline: str, form_id: int, form_name: str) -> Iterator[None]:
    """Run one form's work: clear its recorded failure on success; on failure record it and raise
    (FormFailed unless a retry may cure it)."""
    try:
        yield
    except Exception as err:
        reason = record(conn, pipeline, form_id, err)
        if is_transient(err) or getattr(err, "needs_a_person", False):
            raise  # retried by the task; or an error of ours that already fails the task at once
        raise FormFailed(f"{pipeline}: form {form_name} failed: {reason}") from err
    clear(conn, pipeline, form_id)


PIPELINES = ("validate_responses", "export_sheets")
FAILURES = paging.Keyset("pipeline-failures", str, str)  # ORDER BY pipeline, form slug


def list_failures(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    clauses, params = ["f.organization_id = %s"], [organization_id]
    if page.after:
        clauses.append("(p.pipeline, f.slug) > (%s, %s)")
        params += page.after
    rows = conn.execute(
        f"""SELECT p.pipeline, f.slug AS form, p.error, p.reason, p.failures, p.first_failed_at, p.last_failed_at
              FROM pipeline_failures p JOIN forms f ON f.id = p.form_id
             WHERE {' AND '.join(clauses)} ORDER BY p.pipeline, f.slug LIMIT %s""",
        (*params, page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["pipeline"], r["form"]), shape=dict)

"""The ledger of task runs: one row per (task, response revision), done exactly once, with its outcome.

For async tasks it is also the outbox, with the outboxes' vocabulary and SQL (fieldpipe/outbox.py):

    queued --claim--> sending --> done     (the kind's outcome recorded)
                                  skipped  (nothing to do for this response, e.g. no phone answer)
                                  failed   (a permanent error, or out of attempts)
                                  queued   (a failure to retry, at a later `next_attempt_at`)

Runs are written in the transaction that stores the response or its edit (`enqueue_runs`), so none is
missed. A claim holds a lease (`lease_until`); a run still `sending` after it was abandoned by a killed
worker and is claimed again. Outcomes are recorded only by the claim that holds the run (same attempt).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import outbox, paging
from fieldpipe.config import TaskSettings
from fieldpipe.problems import FieldError, invalid

STATUSES = ("queued", "sending", "done", "skipped", "failed")
RUNS = paging.Keyset("task-runs", int)
ERROR_MAX = 1000


def enqueue_runs(conn: psycopg.Connection, form_id: int, event: str, revisions: Sequence[tuple[int, int]],
                 exclude_kinds: Iterable[str] = ()) -> int:
    """Queue a run of every enabled async task of the form that wants `event`, for each (response id,
    revision); returns how many are new (a run that exists is never queued twice)."""
    if not revisions:
        return 0
    return conn.execute(
        """INSERT INTO task_runs (task_id, response_id, revision, kind)
           SELECT t.id, x.response_id, x.revision, t.kind
             FROM form_tasks t, unnest(%(ids)s::bigint[], %(revisions)s::int[]) AS x(response_id, revision)
            WHERE t.form_id = %(form)s AND t.enabled AND t.mode = 'async' AND %(event)s = ANY (t.events)
              AND t.kind <> ALL (%(exclude)s::text[])
            ORDER BY t.id, x.response_id
           ON CONFLICT (task_id, response_id, revision) DO NOTHING""",
        {"ids": [r for r, _ in revisions], "revisions": [v for _, v in revisions], "form": form_id,
         "event": event, "exclude": list(exclude_kinds)},
    ).rowcount


def record_finished(conn: psycopg.Connection, task_id: int, kind: str,
                    results: Sequence[tuple[int, int, str, Any, str | None]]) -> None:
    """Write runs that finished where they started (a receipt queued at ingestion, a sync task):
    (response id, revision, status, outcome, error) each; a run already in the ledger is left as it is."""
    if not results:
        return
    conn.execute(
        """INSERT INTO task_runs (task_id, response_id, revision, kind, status, attempts, outcome, last_error,
                                  finished_at)
           SELECT %(task)s, x.response_id, x.revision, %(kind)s, x.status, 1, x.outcome, x.error, now()
             FROM unnest(%(ids)s::bigint[], %(revisions)s::int[], %(statuses)s::text[], %(outcomes)s::jsonb[],
                         %(errors)s::text[]) AS x(response_id, revision, status, outcome, error)
           ON CONFLICT (task_id, response_id, revision) DO NOTHING""",
        {"task": task_id, "kind": kind, "ids": [r[0] for r in results], "revisions": [r[1] for r in results],
         "statuses": [r[2] for r in results], "outcomes": [Jsonb(r[3]) for r in results],
         "errors": [r[4] for r in results]},
    )


CLAIM_SQL = f"""
WITH due AS (
    SELECT c.id FROM task_runs c JOIN form_tasks t ON t.id = c.task_id
     WHERE c.kind = %(kind)s AND t.enabled AND ({outbox.due("c")} OR {outbox.lease_expired("c")})
     ORDER BY c.next_attempt_at, c.id
     LIMIT %(limit)s
     FOR UPDATE OF c SKIP LOCKED
), claimed AS (
    UPDATE task_runs c SET {outbox.claim("c", "%(lease)s")}
      FROM due WHERE c.id = due.id
    RETURNING c.id, c.task_id, c.response_id, c.revision, c.attempts
)
SELECT c.id AS run_id, c.task_id, c.response_id, c.revision, c.attempts, t.organization_id, t.form_id,
       f.slug AS form, r.submission_id, r.received_at, rv.submitted_at, rv.collector_id, rv.collector_phone,
       rv.answers, rv.form_version_id, v.version AS form_version,
       CASE WHEN c.revision = 1 THEN 'response.created' ELSE 'response.updated' END AS event
  FROM claimed c
  JOIN form_tasks t ON t.id = c.task_id
  JOIN forms f ON f.id = t.form_id
  JOIN responses r ON r.id = c.response_id
  JOIN response_revisions rv ON rv.response_id = c.response_id AND rv.revision = c.revision
  JOIN form_versions v ON v.id = rv.form_version_id
 ORDER BY c.id
"""


def claim(conn: psycopg.Connection, kind: str, limit: int, lease_s: float) -> list[dict]:
    """Take up to `limit` due runs of one kind (across every form), committed before they run; each as the
    item a kind's `run_async` gets (see kinds.Batch), with `questions` of the version it answered."""
    with conn.transaction():
        rows = conn.execute(CLAIM_SQL, {"kind": kind, "limit": limit, "lease": lease_s}).fetchall()
        # What many runs share (a task's configuration, a version's questions) is read once.
        versions = sorted({r["form_version_id"] for r in rows})
        questions = {v["id"]: v["questions"] for v in conn.execute(
            "SELECT id, questions FROM form_versions WHERE id = ANY (%s)", (versions,))} if versions else {}
        tasks = sorted({r["task_id"] for r in rows})
        configs = {t["id"]: t["config"] for t in conn.execute(
            "SELECT id, config FROM form_tasks WHERE id = ANY (%s)", (tasks,))} if tasks else {}
    for item in rows:
        item["submission_id"] = str(item["submission_id"])
        item["collector"] = {"id": item.pop("collector_id"), "phone": item.pop("collector_phone")}
        item["questions"] = questions[item.pop("form_version_id")]
        item["config"] = configs[item["task_id"]]
    return rows


# The batch's outcomes travel as one JSON array: cheaper to send than an array per column.
RECORD_SQL = f"""
UPDATE task_runs c
   SET status = o.status,
       next_attempt_at = CASE WHEN o.status = 'queued' THEN {outbox.after("o.delay_s")} ELSE c.next_attempt_at END,
       outcome = o.outcome, last_error = o.error, lease_until = NULL, updated_at = clock_timestamp(),
       finished_at = CASE WHEN o.status = 'queued' THEN NULL ELSE clock_timestamp() END
  FROM jsonb_to_recordset(%(results)s::jsonb)
       AS o(id bigint, attempts int, status text, delay_s float8, outcome jsonb, error text)
 -- a worker whose lease ran out and whose run was claimed again does not overwrite the new claim's state
 WHERE c.id = o.id AND c.status = 'sending' AND c.attempts = o.attempts
"""


def record(conn: psycopg.Connection, items: Sequence[dict], results: dict[int, tuple[str, Any, str | None, bool]],
           settings: TaskSettings) -> dict[str, int]:
    """Record each claimed run's result: (status done|skipped|failed, outcome, error, retryable). A retryable
    failure goes back to `queued` after the shared backoff until `max_attempts`. Returns counts per status."""
    rows = []
    counts = {"done": 0, "skipped": 0, "retry": 0, "failed": 0}
    for item in items:
        status, outcome, error, retryable = results[item["run_id"]]
        delay = 0.0
        if status == "failed" and retryable and item["attempts"] < settings.max_attempts:
            status, delay = "queued", settings.backoff.delay(item["attempts"])
        elif status == "failed" and retryable:
            error = f"gave up after {item['attempts']} attempts; last error: {error}"
        counts["retry" if status == "queued" else status] += 1
        rows.append({"id": item["run_id"], "attempts": item["attempts"], "status": status, "delay_s": delay,
                     "outcome": outcome, "error": error[:ERROR_MAX] if error else None})
    if rows:
        conn.execute(RECORD_SQL, {"results": json.dumps(rows)})
    return counts


def due_kinds(conn: psycopg.Connection) -> list[str]:
    """The kinds with runs due now (what a pipeline run has to hand out)."""
    rows = conn.execute(
        f"""SELECT DISTINCT c.kind FROM task_runs c JOIN form_tasks t ON t.id = c.task_id
             WHERE t.enabled AND ({outbox.due("c")} OR {outbox.lease_expired("c")})
             ORDER BY c.kind""").fetchall()
    return [r["kind"] for r in rows]


def run_body(row: dict) -> dict:
    return {name: row[name] for name in ("id", "submission_id", "revision", "status", "attempts",
                                         "next_attempt_at", "last_error", "outcome", "replay_id", "created_at",
                                         "updated_at", "finished_at")} | {"submission_id": str(row["submission_id"])}


def list_runs(conn: psycopg.Connection, task_id: int, page: paging.Page, status: str | None = None) -> dict:
    """A page of a task's runs, oldest first, optionally in one status."""
    if status is not None and status not in STATUSES:
        raise invalid([FieldError("status", "enum", f"must be one of {', '.join(STATUSES)}")])
    rows = conn.execute(
        """SELECT c.*, r.submission_id FROM task_runs c JOIN responses r ON r.id = c.response_id
            WHERE c.task_id = %s AND (%s::text IS NULL OR c.status = %s) AND c.id > %s
            ORDER BY c.id LIMIT %s""",
        (task_id, status, status, page.after[0] if page.after else 0, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=run_body)

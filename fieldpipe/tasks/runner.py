"""Run due async task runs, kind by kind, in batches across every form, and after a submission its sync tasks.

Async: a batch of one kind's claimed runs goes to the kind's `run_async`; its effects (rows in an outbox,
usually) and the runs' outcomes commit in one transaction. A batch that raises is run again one run at a
time, so a run that poisons the kind fails alone (recorded with the error, retried with the shared
backoff) and the others proceed. A kind that is not installed fails its runs the same way (it may come back).

Sync: after the submission is stored, the form's sync tasks run in a pool of threads within one time budget
per submission; a task that raises or is still running when the budget ends is reported as not run (and
recorded as failed in the ledger), and the submission stands.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import psycopg

from fieldpipe.config import TaskSettings
from fieldpipe.tasks import ledger
from fieldpipe.tasks.kinds import Batch, RunFailed, installed_kinds

log = logging.getLogger("fieldpipe.tasks")


def _error(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


def _results(items: list[dict], answer: Any) -> dict[int, tuple[str, Any, str | None, bool]]:
    """A kind's answer as (status, outcome, error, retryable) per run; a run left out is a retryable failure."""
    answer = answer if isinstance(answer, dict) else {}
    results = {}
    for item in items:
        if item["run_id"] not in answer:
            results[item["run_id"]] = ("failed", None, "the task kind gave no outcome for this run", True)
            continue
        value = answer[item["run_id"]]
        if isinstance(value, RunFailed):
            results[item["run_id"]] = ("failed", None, str(value), value.retry)
        elif isinstance(value, dict) and value.get("skipped"):
            results[item["run_id"]] = ("skipped", value, None, False)
        else:
            results[item["run_id"]] = ("done", value, None, False)
    return results


def _run_batch(conn: psycopg.Connection, kind_name: str, kind: Any, items: list[dict], context: dict,
               settings: TaskSettings) -> dict[str, int]:
    try:
        with conn.transaction():
            if kind is None:
                raise LookupError(f"task kind {kind_name!r} is not installed")
            answer = kind.run_async(Batch(kind_name, items, conn, context))
            return ledger.record(conn, items, _results(items, answer), settings)
    except Exception as err:
        if len(items) > 1:  # find the run that poisons the batch: the others must not wait for it
            counts: dict[str, int] = {}
            for item in items:
                for status, n in _run_batch(conn, kind_name, kind, [item], context, settings).items():
                    counts[status] = counts.get(status, 0) + n
            return counts
        log.warning("task kind %s: run %s failed (%s)", kind_name, items[0]["run_id"], type(err).__name__)
        with conn.transaction():
            return ledger.record(conn, items, {items[0]["run_id"]: ("failed", None, _error(err), True)}, settings)


def run_kind(conn: psycopg.Connection, kind_name: str, context: dict | None = None,
             settings: TaskSettings | None = None, max_seconds: float = 300.0) -> dict[str, int]:
    """Run one kind's due runs, batch after batch, until none is due or no batch may start after
    `max_seconds`; returns counts per status (done, skipped, retry, failed)."""
    settings = settings or TaskSettings.from_env()
    kind = installed_kinds().get(kind_name)
    counts = {"done": 0, "skipped": 0, "retry": 0, "failed": 0}
    started = time.monotonic()
    autocommit, conn.autocommit = conn.autocommit, True
    try:
        while time.monotonic() - started < max_seconds:
            items = ledger.claim(conn, kind_name, settings.batch_size, settings.lease_s)
            if not items:
                break
            for status, n in _run_batch(conn, kind_name, kind, items, context or {}, settings).items():
                counts[status] += n
    finally:
        conn.autocommit = autocommit
    log.info("task kind %s in %.1f s: %d done, %d skipped, %d to retry, %d failed", kind_name,
             time.monotonic() - started, counts["done"], counts["skipped"], counts["retry"], counts["failed"])
    return counts


def run_due(conn: psycopg.Connection, context: dict | None = None, settings: TaskSettings | None = None,
            max_seconds: float = 300.0) -> dict[str, dict[str, int]]:
    """Every kind with due runs, one after another (a pipeline hands kinds to parallel tasks instead)."""
    return {kind: run_kind(conn, kind, context, settings, max_seconds) for kind in ledger.due_kinds(conn)}


_sync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sync-task")


def run_sync_tasks(tasks: list[dict], submission: dict, budget_ms: int) -> tuple[dict, list[dict], list[tuple]]:
    """Run the form's sync tasks on one stored submission within `budget_ms` together.

    Returns (outputs by task id, the tasks that did not run with why, ledger rows (task, status, outcome,
    error)). A task still running at the end of the budget finishes in the background, unrecorded."""
    kinds = installed_kinds()
    futures, outputs, not_run, rows = {}, {}, [], []
    for task in tasks:
        kind = kinds.get(task["kind"])
        if kind is None:
            not_run.append({"task_id": task["id"], "kind": task["kind"], "reason": "not_installed"})
            rows.append((task, "failed", None, f"task kind {task['kind']!r} is not installed"))
            continue
        futures[_sync_pool.submit(kind.run_sync, {**submission, "config": task["config"]})] = task
    done, _ = wait(futures, timeout=budget_ms / 1000)
    for future, task in futures.items():
        if future not in done:
            not_run.append({"task_id": task["id"], "kind": task["kind"], "reason": "timeout"})
            rows.append((task, "failed", None, f"did not finish within the submission's budget of {budget_ms} ms"))
        elif future.exception() is not None:
            err = future.exception()
            log.warning("sync task %s (%s) failed: %s", task["id"], task["kind"], type(err).__name__)
            not_run.append({"task_id": task["id"], "kind": task["kind"], "reason": "error"})
            rows.append((task, "failed", None, _error(err)))
        else:
            outputs[task["id"]] = future.result()
            rows.append((task, "done", future.result(), None))
    return outputs, not_run, rows


def after_submission(conn: psycopg.Connection, form: dict, record: dict, settings: TaskSettings | None = None) -> dict | None:
    """Run the form's sync tasks on a submission that is stored (committed); record each in the ledger.
    Returns {results, not_run} for the answer, or None when the form has no enabled sync task."""
    kinds = installed_kinds()
    # A sync kind without `run_sync` has its own member of the answer (rules: `warnings`).
    tasks = [t for t in conn.execute(
        "SELECT id, kind, config FROM form_tasks WHERE form_id = %s AND mode = 'sync' AND enabled ORDER BY id",
        (form["id"],)).fetchall() if t["kind"] not in kinds or hasattr(kinds[t["kind"]], "run_sync")]
    if not tasks:
        return None
    settings = settings or TaskSettings.from_env()
    outputs, not_run, rows = run_sync_tasks(tasks, record, settings.sync_budget_ms)
    response_id = conn.execute("SELECT id FROM responses WHERE form_id = %s AND submission_id = %s",
                               (form["id"], record["submission_id"])).fetchone()["id"]
    for task, status, outcome, error in rows:
        try:
            with conn.transaction():
                ledger.record_finished(conn, task["id"], task["kind"], [(response_id, record["revision"], status,
                                                                         outcome, error)])
        except (TypeError, ValueError):  # an output that is not JSON: the task did not give a usable answer
            outputs.pop(task["id"], None)
            not_run.append({"task_id": task["id"], "kind": task["kind"], "reason": "error"})
            with conn.transaction():
                ledger.record_finished(conn, task["id"], task["kind"], [(response_id, record["revision"], "failed",
                                                                         None, "the output is not JSON")])
    return {"results": {str(k): v for k, v in outputs.items()}, "not_run": not_run}

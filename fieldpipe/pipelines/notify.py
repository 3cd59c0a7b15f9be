"""The failure and deadline callbacks every DAG gets from `defaults`: they turn what Airflow reports into
operators' notices (fieldpipe.operations.notices) and never raise.

- `on_task_failed` (on_failure_callback: after the last retry, never per retry): one notice per form this
  DAG recorded in pipeline_failures during the run, to the form's organization, naming the DAG, the task,
  the form, the reason and the log; the incident is the form in that pipeline, so a form failing run after
  run (in whatever group) is announced once. A failure of no one form goes to the platform's operators;
  its incident is the task (and its mapped name).
- `on_task_succeeded` (on_success_callback): resolves the task's incident, those of forms no longer
  failing, and the DAG's lateness when the task succeeded within its run's deadline, so the next failure
  or late run is announced.
- `on_deadline_missed` (a DeadlineAlert's callback; Airflow 3's replacement for SLA misses): a notice to
  the platform's operators naming the late DAG run, and one to each organization whose work waits on that
  DAG (LATE_DAG_BACKLOGS); the incident is the DAG, so a DAG late run after run is announced once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

log = logging.getLogger("fieldpipe.notices")

# The backlog (fieldpipe.operations.backlog) a late run of these DAGs holds up: the organizations with items
# waiting in it hear that the DAG is late. A late run of any other DAG concerns the platform's operators only.
LATE_DAG_BACKLOGS = {"send_sms": "sms", "flag_callbacks": "webhook", "validate_responses": "unvalidated",
                     "export_sheets": "unexported"}


def incident_of(dag_id: str, task_id: str, map_name: str | None) -> str:
    return f"task:{dag_id}.{task_id}" + (f"[{map_name}]" if map_name else "")


def late_incident(dag_id: str) -> str:
    return f"late:{dag_id}"


def form_incident(pipeline: str, form_id: int) -> str:
    """A form a pipeline cannot process is its own incident, whichever task or group ran it."""
    return f"form:{pipeline}:{form_id}"


def _map_name(ti) -> str | None:
    if getattr(ti, "map_index", -1) in (None, -1):
        return None
    return getattr(ti, "rendered_map_index", None) or str(ti.map_index)


def failure_notices(conn, *, dag_id: str, task_id: str, map_name: str | None, run_id: str, tries: int,
                    log_url: str, since, error: BaseException | None) -> list:
    """The notices one failed task instance raises: one per form this DAG recorded as failed since `since`
    (to the form's organization), or, when no form failed, one to the platform's operators for the task."""
    from fieldpipe.operations.notices import Notice
    from fieldpipe.pipelines.failures import describe

    task = f"{task_id}[{map_name}]" if map_name else task_id
    head = f"DAG {dag_id}, task {task}, run {run_id}: failed after {tries} tr{'y' if tries == 1 else 'ies'}."
    data = {"dag_id": dag_id, "task_id": task_id, "map": map_name, "run_id": run_id, "log_url": log_url}
    forms = conn.execute(
        """SELECT p.form_id, f.organization_id, o.slug || '/' || f.slug AS form, p.pipeline, p.reason, p.failures
             FROM pipeline_failures p JOIN forms f ON f.id = p.form_id JOIN organizations o ON o.id = f.organization_id
            WHERE p.pipeline = %s AND p.last_failed_at >= %s ORDER BY o.slug, f.slug""", (dag_id, since)).fetchall()
    if not forms:
        reason = describe(error) if error is not None else "unknown (see the log)"
        return [Notice(None, incident_of(dag_id, task_id, map_name), "pipeline.failed",
                       f"[fieldpipe] {dag_id} failed: {task}", f"{head}\nError: {reason}\nLog: {log_url}\n",
                       {**data, "forms": [], "error": reason})]
    return [Notice(
        row["organization_id"], form_incident(row["pipeline"], row["form_id"]), "pipeline.failed",
        f"[fieldpipe] {dag_id} failed for {row['form']}",
        f"{head}\nForm: {row['form']} (failed {row['failures']} run(s) in a row; skipped until fixed, the next run "
        f"tries it again)\nError: {row['reason']}\nLog: {log_url}\n",
        {**data, "forms": [{"form": row["form"], "pipeline": row["pipeline"], "error": row["reason"]}]})
        for row in forms]


def resolve_recovered_forms(conn) -> int:
    """Close the notices of forms no longer in pipeline_failures (they were processed since)."""
    with conn.transaction():
        return conn.execute(
            """UPDATE operator_notices n SET resolved_at = now()
                WHERE n.resolved_at IS NULL AND n.incident LIKE 'form:%%'
                  AND NOT EXISTS (SELECT 1 FROM pipeline_failures p
                                   WHERE n.incident = 'form:' || p.pipeline || ':' || p.form_id)""").rowcount


def announce(notices: list) -> None:
    """Open each notice and try its mail at once (what is not handed over now, the operations DAG retries)."""
    from fieldpipe.operations.notices import raise_notice, send_due_emails, smtp_mailer
    from fieldpipe.pipelines.connections import app_database
    from fieldpipe.pipelines.names import SMTP_CONN

    with app_database() as conn:
        conn.autocommit = True
        opened = [notice_id for notice in notices if (notice_id := raise_notice(conn, notice)) is not None]
        if opened:
            counts = send_due_emails(conn, smtp_mailer(SMTP_CONN), notice_ids=opened)
            log.info("%d notice(s) opened, %d already open; mail: %d sent, %d to retry, %d failed",
                     len(opened), len(notices) - len(opened), counts["sent"], counts["retry"], counts["failed"])
        else:
            log.info("the incident is already announced (%d open notice(s)); nothing sent", len(notices))


def on_task_failed(context) -> None:
    try:
        from fieldpipe.pipelines.connections import app_database

        ti = context["ti"]
        since = getattr(context.get("dag_run"), "start_date", None) or ti.start_date
        with app_database() as conn:
            notices = failure_notices(
                conn, dag_id=ti.dag_id, task_id=ti.task_id, map_name=_map_name(ti), run_id=ti.run_id,
                tries=ti.try_number, log_url=ti.log_url, since=since, error=context.get("exception"))
        announce(notices)
    except Exception:  # a notice that cannot be raised is logged; it must never change the task's outcome
        log.exception("could not raise the failure notice")


def on_task_succeeded(context) -> None:
    try:
        from fieldpipe.operations.notices import resolve
        from fieldpipe.pipelines.connections import app_database

        ti = context["ti"]
        with app_database() as conn:
            resolve(conn, None, [incident_of(ti.dag_id, ti.task_id, _map_name(ti))], any_organization=True)
            resolve_recovered_forms(conn)
            resolve_if_on_time(conn, context)
    except Exception:
        log.exception("could not resolve the task's failure notice")


def late_notices(conn, *, dag_id: str, run_id: str, deadline, state: str | None, run_url: str) -> list:
    """The notices a late run raises: one to the platform's operators and one to each organization whose work
    the late DAG holds up (LATE_DAG_BACKLOGS: its oldest waiting item and how many). The incident is the
    DAG, not the run: a DAG late run after run is announced once, until it is on time again."""
    from fieldpipe.operations.backlog import organization_backlogs
    from fieldpipe.operations.notices import Notice

    head = f"DAG {dag_id}, run {run_id}: not finished by its deadline {deadline} (state {state})."
    data = {"dag_id": dag_id, "run_id": run_id, "deadline": str(deadline), "log_url": run_url, "forms": [],
            "error": "missed its deadline"}
    incident = late_incident(dag_id)
    notices = [Notice(None, incident, "pipeline.failed", f"[fieldpipe] {dag_id} missed its deadline",
                      f"{head}\nRun: {run_url}\n", data)]
    backlog = LATE_DAG_BACKLOGS.get(dag_id)
    if backlog is None:
        return notices
    for row in organization_backlogs(conn):
        if row["backlog"] != backlog:
            continue
        count = f"{row['items']} waiting, " if row["items"] is not None else ""
        waited = timedelta(seconds=int(row["oldest_age_s"]))
        notices.append(Notice(
            row["organization_id"], incident, "pipeline.failed",
            f"[fieldpipe] {dag_id} is late for {row['organization']}",
            f"{head}\n{row['organization']}: {count}the oldest waiting {waited} ({backlog} backlog).\n"
            f"Run: {run_url}\n",
            {**data, "backlog": backlog, "items": row["items"], "oldest_age_s": round(row["oldest_age_s"])}))
    return notices


def on_deadline_missed(context: dict, **_: object) -> None:
    """A DAG run is still not done at its deadline (a DeadlineAlert's callback, run by the executor with what
    the scheduler knows: the run and the deadline): tell the operators whose work waits on it."""
    try:
        from fieldpipe.pipelines.connections import app_database

        run = context.get("dag_run") or {}
        dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
        deadline = (context.get("deadline") or {}).get("deadline_time")
        with app_database() as conn:
            notices = late_notices(conn, dag_id=dag_id, run_id=run_id, deadline=deadline, state=run.get("state"),
                                   run_url=run_url(dag_id, run_id))
        announce(notices)
    except Exception:
        log.exception("could not raise the deadline notice")


def run_url(dag_id: str, run_id: str) -> str:
    """The run's page in the Airflow UI (its tasks and their logs)."""
    from urllib.parse import quote

    from airflow.sdk.configuration import conf

    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/")
    return f"{base_url.rstrip('/')}/dags/{quote(dag_id)}/runs/{quote(run_id, safe='')}"


def resolve_if_on_time(conn, context) -> int:
    """Close the DAG's lateness incident once one of its tasks succeeds within its run's deadline. (A task sees
    its run's start, not its queue time; for these DAGs, one run at a time, the two are moments apart.)"""
    from fieldpipe.operations.notices import resolve

    run, dag = context.get("dag_run"), context.get("dag")
    started = getattr(run, "start_date", None)
    intervals = [alert.interval for alert in (getattr(dag, "deadline", None) or [])
                 if isinstance(alert.interval, timedelta)]
    if started is None or not intervals or datetime.now(timezone.utc) > started + min(intervals):
        return 0
    return resolve(conn, None, [late_incident(dag.dag_id)], any_organization=True)

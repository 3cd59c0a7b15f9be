"""Replay: send the responses received in a time range through an async task (new, or repaired), in the background.

`POST .../tasks/{id}/replay {"from", "to"}` stores a pending replay (202). The `run_tasks` pipeline starts it:
one statement queues a run for each response received in [from, to) that the task has not run for yet,
so a response the task already handled is never sent again (the ledger's unique key). Which revision: the
response's current one when the task wants `response.updated` (or it is the first), else revision 1.
Progress is read from the ledger: the runs of the task for the range's responses, by status.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.responses import parse_timestamp
from fieldpipe.tasks.store import task_row

REPLAY_FIELDS = {"from", "to"}


def request_replay(conn: psycopg.Connection, form: dict, task_id: int, payload: Any) -> dict:
    task = task_row(conn, form, task_id)
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object with from and to")])
    errors = [FieldError(extra, "unknown_field", "a replay takes from and to") for extra in sorted(set(payload) - REPLAY_FIELDS)]
    start = parse_timestamp(payload.get("from"), "from", errors)
    end = parse_timestamp(payload.get("to"), "to", errors)
    if start is not None and end is not None and start >= end:
        errors.append(FieldError("to", "order", "must be later than from"))
    if task["mode"] != "async":
        errors.append(FieldError("task", "sync_task", f"a {task['kind']} task runs at submission only; "
                                                      "only async tasks are replayed"))
    elif not task["events"]:
        errors.append(FieldError("task", "no_response_events", f"a {task['kind']} task does not run per response; "
                                                               "there is nothing to replay"))
    if errors:
        raise invalid(errors)
    total = conn.execute(
        "SELECT count(*) AS n FROM responses WHERE form_id = %s AND received_at >= %s AND received_at < %s",
        (form["id"], start, end)).fetchone()["n"]
    row = conn.execute(
        """INSERT INTO task_replays (task_id, received_from, received_to, total) VALUES (%s, %s, %s, %s)
           RETURNING id""", (task_id, start, end, total)).fetchone()
    return get_replay(conn, form, task_id, row["id"])


START_SQL = """
INSERT INTO task_runs (task_id, response_id, revision, kind, replay_id)
SELECT t.id, r.id,
       CASE WHEN r.revision > 1 AND 'response.updated' = ANY (t.events) THEN r.revision ELSE 1 END,
       t.kind, p.id
  FROM task_replays p
  JOIN form_tasks t ON t.id = p.task_id
  JOIN responses r ON r.form_id = t.form_id AND r.received_at >= p.received_from AND r.received_at < p.received_to
 WHERE p.id = %(replay)s
   AND ('response.created' = ANY (t.events) OR (r.revision > 1 AND 'response.updated' = ANY (t.events)))
 ORDER BY r.id
ON CONFLICT (task_id, response_id, revision) DO NOTHING
"""


def start_pending(conn: psycopg.Connection) -> list[dict]:
    """Queue the runs of every pending replay, each in its own transaction; returns what each queued."""
    started = []
    while True:
        with conn.transaction():
            replay = conn.execute(
                """SELECT id FROM task_replays WHERE status = 'pending' ORDER BY id
                    LIMIT 1 FOR UPDATE SKIP LOCKED""").fetchone()
            if replay is None:
                return started
            queued = conn.execute(START_SQL, {"replay": replay["id"]}).rowcount
            conn.execute("UPDATE task_replays SET status = 'running', queued = %s, started_at = now() WHERE id = %s",
                         (queued, replay["id"]))
        started.append({"replay_id": replay["id"], "queued": queued})


def get_replay(conn: psycopg.Connection, form: dict, task_id: int, replay_id: int) -> dict:
    """The replay with its progress: the task's runs for the range's responses, by status."""
    task_row(conn, form, task_id)
    replay = conn.execute("SELECT * FROM task_replays WHERE id = %s AND task_id = %s",
                          (replay_id, task_id)).fetchone()
    if replay is None:
        raise not_found(f"replay {replay_id}")
    counts = {s: 0 for s in ("queued", "sending", "done", "skipped", "failed")}
    for row in conn.execute(
            """SELECT c.status, count(*) AS n FROM task_runs c JOIN responses r ON r.id = c.response_id
                WHERE c.task_id = %s AND r.form_id = %s AND r.received_at >= %s AND r.received_at < %s
                GROUP BY c.status""",
            (task_id, form["id"], replay["received_from"], replay["received_to"])):
        counts[row["status"]] = row["n"]
    status = replay["status"]
    if status == "running" and counts["queued"] + counts["sending"] == 0:
        status = "done"
    return {"id": replay["id"], "task_id": task_id, "from": replay["received_from"], "to": replay["received_to"],
            "status": status, "responses": replay["total"], "queued_by_replay": replay["queued"],
            "runs": counts, "created_at": replay["created_at"], "started_at": replay["started_at"]}

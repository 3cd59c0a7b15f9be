"""Dry runs: a proposed rules document evaluated against a form's stored responses, writing no flags.

The answer says, per rule, how many responses it would flag and a few of their submission ids:
`{"responses_evaluated": N, "rules": [{"id", "would_flag", "examples"}]}`. Expression rules are one
aggregate statement (every verdict computed once per response); expectations and statistical checks
run as the validation run runs them. A rule that fails in PostgreSQL is listed with its `error`.

A dry run over more responses than the settings' `rules_dry_run_sync_limit` is a job (`rules_dry_runs`):
the request answers 202 with a link to poll, and a thread of the API process runs it. A job holds a
lease; one whose process stopped is reported failed when its lease has passed (start it again: a
dry run writes nothing, so running it twice is harmless).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from fieldpipe import domains
from fieldpipe.db import connect
from fieldpipe.forms import CURRENT_FORMS
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.rules.compiler import typed_relation, verdict
from fieldpipe.rules.loader import RuleSet, RulesFileError
from fieldpipe.rules.store import check, rules_problem

log = logging.getLogger(__name__)

EXAMPLES = 5
JOB_LEASE = dt.timedelta(minutes=30)
_jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rules-dry-run")


MAX_LATEST = domains.INTEGER_MAX


def parse_latest(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        latest = int(value)
        if not 1 <= latest <= MAX_LATEST:
            raise ValueError
    except (TypeError, ValueError):
        raise invalid([FieldError("latest", "range", f"must be a whole number of responses from 1 to {MAX_LATEST}")]) from None
    return latest


def source(form_id: int, latest: int | None) -> sql.Composed:
    """The responses evaluated: all of the form's, or its latest N received."""
    query = sql.SQL("SELECT id, revision, answers FROM responses WHERE form_id = {}").format(sql.Literal(form_id))
    if latest is not None:
        query = sql.SQL("{} ORDER BY received_at DESC, id DESC LIMIT {}").format(query, sql.Literal(latest))
    return query


def responses_to_evaluate(conn: psycopg.Connection, form_id: int, latest: int | None) -> int:
    total = conn.execute("SELECT count(*) AS n FROM responses WHERE form_id = %s", (form_id,)).fetchone()["n"]
    return total if latest is None else min(total, latest)


def _expression_counts(conn: psycopg.Connection, rules: list, batch: sql.Composable) -> tuple[int, dict[str, dict]]:
    """(responses evaluated, {rule id: {would_flag, example response ids}}) in one pass over the batch."""
    names = {r.id: (sql.Identifier(f"verdict:{r.id}")) for r in rules}
    verdicts = sql.SQL("").join(sql.SQL(", {} AS {}").format(verdict(r.tree), names[r.id]) for r in rules)
    aggregates = sql.SQL("").join(
        sql.SQL(", count(*) FILTER (WHERE {v} IS FALSE), fieldpipe_first_n(id, {n}) FILTER (WHERE {v} IS FALSE)").format(
            v=names[r.id], n=sql.Literal(EXAMPLES)) for r in rules)
    query = sql.SQL("SELECT count(*){} FROM (SELECT id{} FROM ({}) typed OFFSET 0) t").format(
        aggregates, verdicts, typed_relation([r.tree for r in rules], batch))
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query).fetchone()
    found = {r.id: {"would_flag": row[1 + 2 * i], "examples": row[2 + 2 * i] or []} for i, r in enumerate(rules)}
    return row[0], found


def _expressions(conn: psycopg.Connection, rules: list, batch: sql.Composable) -> tuple[int | None, dict[str, dict]]:
    """All rules at once; when that fails at run time, each alone so the failing rule is named."""
    if not rules:
        return None, {}
    try:
        with conn.transaction():
            return _expression_counts(conn, rules, batch)
    except psycopg.errors.DataError as err:
        if len(rules) == 1:
            return None, {rules[0].id: {"would_flag": None, "examples": [],
                                        "error": f"fails in PostgreSQL: {err.diag.message_primary}"}}
    evaluated, found = None, {}
    for rule in rules:
        count, one = _expressions(conn, [rule], batch)
        evaluated = count if count is not None else evaluated
        found.update(one)
    return evaluated, found


def evaluate(conn: psycopg.Connection, form: dict, ruleset: RuleSet, latest: int | None = None) -> dict:
    """What validating the form's responses (or its latest N) against `ruleset` would flag; writes nothing."""
    started = time.monotonic()
    batch = source(form["id"], latest)
    with conn.transaction():
        evaluated, found = _expressions(conn, ruleset.rules, batch)
        if evaluated is None:
            evaluated = conn.execute(sql.SQL("SELECT count(*) AS n FROM ({}) b").format(batch)).fetchone()["n"]
        if ruleset.expectations and evaluated:
            from fieldpipe.rules.expectations import find_unexpected

            unexpected, broken = find_unexpected(conn, form["id"], ruleset.expectations, batch)
            for rule_id, ids in unexpected.items():
                found[rule_id] = {"would_flag": len(ids), "examples": sorted(ids)[:EXAMPLES]}
            for rule_id, error in broken.items():
                found[rule_id] = {"would_flag": None, "examples": [], "error": error}
        example_ids = sorted({i for item in found.values() for i in item["examples"]})
        submission_ids = {row["id"]: str(row["submission_id"]) for row in conn.execute(
            "SELECT id, submission_id FROM responses WHERE id = ANY(%s)", (example_ids,))}
    rules = []
    for item in [*ruleset.rules, *ruleset.expectations]:
        outcome = found.get(item.id, {"would_flag": 0, "examples": []})
        rules.append({"id": item.id, **outcome, "examples": [submission_ids[i] for i in outcome["examples"]]})
    log.info("dry run of %d rule(s) over %d response(s) of form %s in %.1f s", len(rules), evaluated,
             form["slug"], time.monotonic() - started)
    return {"responses_evaluated": evaluated, "rules": rules}


def dry_run(conn: psycopg.Connection, form: dict, document: Any, latest: int | None = None) -> dict:
    try:
        _, ruleset = check(document, form)
    except RulesFileError as err:
        raise rules_problem(err) from None
    return evaluate(conn, form, ruleset, latest)


# --- jobs ----------------------------------------------------------------------------------------------

def job_body(row: dict, form_slug: str) -> dict:
    return {"id": row["id"], "status": row["status"], "latest": row["latest"], "created_at": row["created_at"],
            "created_by": row["created_by"], "finished_at": row["finished_at"], "error": row["error"],
            "result": row["result"], "poll": f"/api/v1/forms/{form_slug}/rules/dry-runs/{row['id']}"}


def start_job(conn: psycopg.Connection, form: dict, document: Any, latest: int | None, author: str,
              database_url: str) -> dict:
    """Check the document, record the job and hand it to this process's dry-run thread (after committing,
    so the thread finds it)."""
    try:
        stored, _ = check(document, form)
    except RulesFileError as err:
        raise rules_problem(err) from None
    row = conn.execute(
        """INSERT INTO rules_dry_runs (form_id, document, latest, created_by, lease_until)
           VALUES (%s, %s, %s, %s, now() + %s) RETURNING *""",
        (form["id"], Jsonb(stored), latest, author, JOB_LEASE),
    ).fetchone()
    conn.commit()
    _jobs.submit(run_job, database_url, row["id"])
    return job_body(row, form["slug"])


JOB_FORM_SQL = f"""
SELECT j.id AS job_id, j.document, j.latest, f.id, f.slug, o.slug AS organization, v.questions
  FROM rules_dry_runs j JOIN {CURRENT_FORMS} ON f.id = j.form_id JOIN organizations o ON o.id = f.organization_id
 WHERE j.id = %s
"""


def run_job(database_url: str, job_id: int) -> None:
    """Claim the job, evaluate, record the result (or the failure)."""
    with connect(database_url, autocommit=True) as conn:
        claimed = conn.execute(
            """UPDATE rules_dry_runs SET status = 'running', lease_until = now() + %s
                WHERE id = %s AND status = 'queued' RETURNING id""", (JOB_LEASE, job_id)).fetchone()
        if claimed is None:
            return
        try:
            job = conn.execute(JOB_FORM_SQL, (job_id,)).fetchone()
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(JOB_LEASE.total_seconds())}s",))
            _, ruleset = check(job["document"], job)
            result = evaluate(conn, job, ruleset, job["latest"])
        except Exception as err:  # a job fails visibly, whatever went wrong
            # The class only: a database error's text can quote answers, which stay out of logs.
            log.error("rules dry run %s failed: %s", job_id, type(err).__name__)
            conn.execute("""UPDATE rules_dry_runs SET status = 'failed', error = %s, finished_at = now()
                             WHERE id = %s""", (f"{type(err).__name__}: {err}"[:500], job_id))
            return
        conn.execute("""UPDATE rules_dry_runs SET status = 'done', result = %s, finished_at = now()
                         WHERE id = %s""", (Jsonb(result), job_id))


def get_job(conn: psycopg.Connection, form: dict, job_id: str) -> dict:
    """A dry-run job of this form; one whose lease passed before it finished is failed (its process stopped)."""
    if not job_id.isdigit() or len(job_id) > 18:
        raise not_found(f"dry run {job_id!r}")
    conn.execute(
        """UPDATE rules_dry_runs SET status = 'failed', finished_at = now(),
                  error = 'interrupted: the process running it stopped; start the dry run again'
            WHERE id = %s AND form_id = %s AND status IN ('queued', 'running') AND lease_until < now()""",
        (int(job_id), form["id"]))
    row = conn.execute("SELECT * FROM rules_dry_runs WHERE id = %s AND form_id = %s", (int(job_id), form["id"])).fetchone()
    if row is None:
        raise not_found(f"dry run {job_id!r}")
    return job_body(row, form["slug"])

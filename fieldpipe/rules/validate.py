"""Set-based validation of the responses received or edited since the last run, form by form.

`validate_slug` is what the `validate_responses` DAG runs for each affected form slug (`pending_work`),
grouped into a few task instances by `fieldpipe.pipelines.groups`. For every form with that slug (one
per organization) it reads that form's rules version in force from the database and checks it against
the form's current questions, then in one REPEATABLE READ transaction: evaluates every expression rule in one SQL statement over the batch,
runs the column expectations, writes and closes flags, and advances the watermark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from fieldpipe.forms import CURRENT_FORMS
from fieldpipe.rules import ledger
from fieldpipe.pipelines import failures as pipeline_failures
from fieldpipe.pipelines.failures import Explained
from fieldpipe.rules.compiler import violations_query
from fieldpipe.rules.loader import RuleSet, RulesFileError
from fieldpipe.rules.store import RULES_TASK_DISABLED, ruleset_for

log = logging.getLogger(__name__)
PIPELINE = "validate_responses"



def batch_source(form_id: int, since) -> sql.Composed:
    """The batch as an SQL relation. Values are inlined as literals: a rule's text may contain '%',
    which a query executed with parameters would take for a placeholder."""
    return sql.SQL("SELECT id, revision, answers FROM responses WHERE form_id = {} AND updated_at > {}").format(
        sql.Literal(form_id), sql.Literal(since))


class ValidationFailed(RuntimeError):
    """A form's rules no longer fit its questions or some of its rules failed at run time; the other forms were validated."""

    needs_a_person = True


@dataclass
class FormValidation:
    form_id: int
    organization: str
    slug: str
    checked: int = 0
    opened: int = 0
    updated: int = 0
    closed: dict = field(default_factory=dict)
    broken: dict = field(default_factory=dict)  # rule id -> error
    revalidated_all: bool = False

    def summary(self) -> str:
        scope = "all responses (rules changed)" if self.revalidated_all else "new or edited responses"
        text = (f"form {self.organization}/{self.slug}: checked {self.checked} {scope}; flags opened {self.opened}, "
                f"updated {self.updated}, closed {sum(self.closed.values())} {self.closed or ''}")
        if self.broken:
            text += "; broken rules: " + "; ".join(f"{k}: {v}" for k, v in self.broken.items())
        return text


def _collect_violations(conn: psycopg.Connection, rules: list, source: sql.Composed) -> tuple[list[str], dict[str, str]]:
    """All rules in one statement; if it fails at run time (say, a regex PostgreSQL rejects), each rule
    alone, so a broken rule is reported as broken and the others still flag what they find."""
    if not rules:
        return [], {}
    try:
        with conn.transaction():
            conn.execute(sql.SQL("INSERT INTO run_violations (response_id, revision, rule_id, message) {}").format(
                violations_query(rules, source)))
        return [r.id for r in rules], {}
    except psycopg.errors.DataError as err:
        if len(rules) == 1:
            return [], {rules[0].id: f"fails in PostgreSQL: {err.diag.message_primary}"}
    evaluated, broken = [], {}
    for rule in rules:
        ok, bad = _collect_violations(conn, [rule], source)
        evaluated += ok
        broken.update(bad)
    return evaluated, broken


def validate_form(conn: psycopg.Connection, form: dict, ruleset: RuleSet) -> FormValidation:
    """Validate one form's batch and record flags and watermark in one transaction."""
    result = FormValidation(form["id"], form["organization"], form["slug"])
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        watermark = ledger.lock_watermark(conn, form["id"])
        since = watermark.since(ruleset.fingerprint)
        result.revalidated_all = since == ledger.EVERYTHING
        source = batch_source(form["id"], since)
        result.checked = conn.execute(sql.SQL("SELECT count(*) AS n FROM ({}) batch").format(source)).fetchone()["n"]
        ledger.create_run_table(conn)
        evaluated, result.broken = _collect_violations(conn, ruleset.rules, source)
        if ruleset.expectations and result.checked:
            from fieldpipe.rules.expectations import run_expectations

            ran, broken = run_expectations(conn, form["id"], ruleset.expectations, source)
            evaluated += ran
            result.broken.update(broken)
        elif ruleset.expectations:
            evaluated += [e.id for e in ruleset.expectations]
        counts = ledger.record_run(conn, form["id"], [*ruleset.rules, *ruleset.expectations], evaluated, since,
                                   ruleset.version)
        result.opened, result.updated, result.closed = counts["opened"], counts["updated"], counts["closed"]
        if not result.broken:
            # A run with broken rules leaves the watermark, so the batch is validated again once they are fixed.
            ledger.advance_watermark(conn, form["id"], ruleset.fingerprint)
    log.info(result.summary())
    return result


# A form whose rules task is disabled is left alone (its watermark stays, so enabling it again validates what
# came meanwhile).
FORMS_SQL = f"""
SELECT f.id, f.slug, f.rules_version, o.slug AS organization, v.questions
  FROM {CURRENT_FORMS} JOIN organizations o ON o.id = f.organization_id
 WHERE f.slug = %s AND NOT {RULES_TASK_DISABLED} ORDER BY o.slug
"""


def validate_slug(conn: psycopg.Connection, form_slug: str) -> list[FormValidation]:
    """Validate every form with this slug (one per organization) against its own rules in force; raise
    ValidationFailed at the end if a form's rules no longer fit its questions or a rule failed, after the
    other forms were validated."""
    with conn.transaction():
        forms = conn.execute(FORMS_SQL, (form_slug,)).fetchall()
    results, failures = [], []
    for form in forms:
        name = f"{form['organization']}/{form_slug}"
        try:
            with conn.transaction():
                ruleset = ruleset_for(conn, form)
        except RulesFileError as err:
            failures.append(f"form {name}: rules are broken, nothing validated:\n{err.report()}")
            pipeline_failures.record(conn, PIPELINE, form["id"], Explained("RulesBroken", failures[-1]))
            continue
        try:
            result = validate_form(conn, form, ruleset)
        except Exception as err:  # one form's failure never stops the others (issue 11)
            reason = pipeline_failures.record(conn, PIPELINE, form["id"], err)
            if pipeline_failures.is_transient(err):
                raise
            failures.append(f"form {name}: failed, skipped until the next run: {reason}")
            continue
        results.append(result)
        if result.broken:
            failures.append(result.summary())
            pipeline_failures.record(conn, PIPELINE, form["id"], Explained("RuleFailed", result.summary()))
        else:
            pipeline_failures.clear(conn, PIPELINE, form["id"])
    if failures:
        raise ValidationFailed("\n".join(failures))
    return results


PENDING_SQL = f"""
WITH watermarked AS (
    SELECT f.id, f.slug, w.form_id IS NULL OR w.rules_fingerprint IS DISTINCT FROM
                         coalesce('version:' || f.rules_version, 'none') AS everything, w.validated_through,
           EXISTS (SELECT FROM rules_versions v, jsonb_array_elements(v.document -> 'expectations') e
                    WHERE v.form_id = f.id AND v.version = f.rules_version
                      AND NOT e ->> 'expectation' = ANY(%(in_sql)s)) AS gx
      FROM forms f
      LEFT JOIN validation_watermarks w ON w.form_id = f.id
     WHERE (f.rules_version IS NOT NULL OR w.form_id IS NOT NULL) AND NOT {RULES_TASK_DISABLED}
)
SELECT m.slug, sum(p.rows)::bigint AS rows, bool_or(m.gx) AS gx
  FROM watermarked m
 CROSS JOIN LATERAL (
       SELECT count(*) AS rows FROM responses r
        WHERE r.form_id = m.id
          AND r.updated_at > CASE WHEN m.everything THEN '-infinity' ELSE m.validated_through END) p
 GROUP BY m.slug
HAVING bool_or(m.everything) OR sum(p.rows) > 0
 ORDER BY m.slug
"""


def pending_work(conn: psycopg.Connection) -> list[dict]:
    """Form slugs with responses received or edited since their watermark, or whose rules version changed,
    as units of work for `fieldpipe.pipelines.groups`: {"key": slug, "name": slug, "rows": responses to check,
    "gx": whether a column expectation of its rules runs in GX Core}."""
    from fieldpipe.rules.statistics import STATISTICAL

    with conn.transaction():
        rows = conn.execute(PENDING_SQL, {"in_sql": list(STATISTICAL)}).fetchall()
    return [{"key": r["slug"], "name": r["slug"], "rows": r["rows"], "gx": r["gx"]} for r in rows]


def validate_group(conn: psycopg.Connection, group: dict) -> dict:
    """Validate a group of `pending_work`'s units (`fieldpipe.pipelines.groups.run_group`). When some need GX
    Core, its import starts in a thread at once and those forms come last: the others' SQL runs meanwhile."""
    from fieldpipe.pipelines import groups

    units = sorted(group["units"], key=lambda unit: unit.get("gx", False))  # stable: name order otherwise
    if units and units[-1].get("gx"):
        from fieldpipe.rules.expectations import import_in_background

        import_in_background()
    return groups.run_group(PIPELINE, {**group, "units": units}, lambda unit: "; ".join(
        result.summary() for result in validate_slug(conn, unit["key"])))

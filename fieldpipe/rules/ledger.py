"""The validation run's record: the form's watermark, the run's findings, and the flags they open and close.

Flags are what business rules found wrong with a response revision (read through `fieldpipe.flags`).
A validation run (`rules/validate.py`) puts its findings in the temporary table `run_violations`
(response_id, revision, rule_id, message); `record_run` turns them into flags in a few statements:
- upsert one flag per (response, revision, rule): a rerun finds the same flags, so nothing is added;
- close open flags of the batch's responses that no longer hold: `passed` (the response, as it is now,
  no longer breaks the rule: fixed by an edit, or the rule changed), `superseded` (a newer revision
  was validated and breaks the rule again: it has its own flag), `rule_removed` (the rule is not in the
form's rules version in force).
The watermark (`validation_watermarks`) advances in the same transaction, after the flags are written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

# Ingestion commits a moment after it stamps updated_at; re-reading this much of the past catches such rows.
REVISIT_WINDOW = dt.timedelta(minutes=2)
EVERYTHING = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
ANALYZE_AFTER_FLAGS = 10_000  # flags opened or changed by one form's run that make fresh statistics worth it


@dataclass
class Watermark:
    fingerprint: str | None
    validated_through: dt.datetime

    def since(self, fingerprint: str) -> dt.datetime:
        """Where this run starts: everything again when the rules version changed."""
        return self.validated_through if self.fingerprint == fingerprint else EVERYTHING


def lock_watermark(conn: psycopg.Connection, form_id: int) -> Watermark:
    """The form's watermark, locked for this transaction so two runs never validate one form at once."""
    conn.execute(
        """INSERT INTO validation_watermarks (form_id, rules_fingerprint, validated_through)
           VALUES (%s, '', %s) ON CONFLICT (form_id) DO NOTHING""",
        (form_id, EVERYTHING),
    )
    row = conn.execute(
        "SELECT rules_fingerprint, validated_through FROM validation_watermarks WHERE form_id = %s FOR UPDATE",
        (form_id,),
    ).fetchone()
    return Watermark(row["rules_fingerprint"] or None, row["validated_through"])


def advance_watermark(conn: psycopg.Connection, form_id: int, fingerprint: str) -> None:
    conn.execute(
        """UPDATE validation_watermarks
              SET rules_fingerprint = %s, updated_at = now(),
                  validated_through = CASE WHEN rules_fingerprint = %s
                                           THEN greatest(validated_through, now() - %s) ELSE now() - %s END
            WHERE form_id = %s""",
        (fingerprint, fingerprint, REVISIT_WINDOW, REVISIT_WINDOW, form_id),
    )


def create_run_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """CREATE TEMPORARY TABLE IF NOT EXISTS run_violations (
               response_id bigint NOT NULL, revision integer NOT NULL, rule_id text NOT NULL, message text NOT NULL,
               -- closing flags looks a violation up per open flag (NOT EXISTS inside an OR is not an anti-join)
               PRIMARY KEY (response_id, revision, rule_id)
           ) ON COMMIT DELETE ROWS"""
    )


UPSERT_SQL = """
WITH meta AS (
    SELECT * FROM unnest(%(ids)s::text[], %(severities)s::text[], %(notify)s::text[]) AS m(rule_id, severity, notify)
), written AS (
    INSERT INTO flags (form_id, response_id, revision, rule_id, severity, notify, message, rules_version)
    SELECT %(form_id)s, v.response_id, v.revision, v.rule_id, m.severity, m.notify, v.message, %(rules_version)s
      FROM run_violations v JOIN meta m USING (rule_id)
    ON CONFLICT (response_id, revision, rule_id) DO UPDATE
       SET severity = EXCLUDED.severity, notify = EXCLUDED.notify, message = EXCLUDED.message, status = 'open',
           rules_version = EXCLUDED.rules_version,
           close_reason = NULL, closed_at = NULL,
           opened_at = CASE WHEN flags.status = 'open' THEN flags.opened_at ELSE now() END
     WHERE (flags.severity, flags.notify, flags.message, flags.status)
           IS DISTINCT FROM (EXCLUDED.severity, EXCLUDED.notify, EXCLUDED.message, 'open')
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted) AS opened, count(*) FILTER (WHERE NOT inserted) AS updated FROM written
"""

CLOSE_SQL = """
WITH closing AS (
    SELECT f.id,
           CASE WHEN NOT f.rule_id = ANY(%(current)s) THEN 'rule_removed'
                WHEN f.revision < r.revision
                     AND (NOT f.rule_id = ANY(%(evaluated)s)
                          OR EXISTS (SELECT 1 FROM run_violations v WHERE v.response_id = r.id
                                        AND v.revision = r.revision AND v.rule_id = f.rule_id)) THEN 'superseded'
                ELSE 'passed' END AS reason
      FROM flags f JOIN responses r ON r.id = f.response_id
     WHERE f.form_id = %(form_id)s AND f.status = 'open' AND r.updated_at > %(since)s
       AND (f.revision < r.revision
            OR NOT f.rule_id = ANY(%(current)s)
            OR (f.rule_id = ANY(%(evaluated)s)
                AND NOT EXISTS (SELECT 1 FROM run_violations v WHERE v.response_id = f.response_id
                                   AND v.revision = f.revision AND v.rule_id = f.rule_id)))
)
UPDATE flags f SET status = 'closed', close_reason = c.reason, closed_at = now()
  FROM closing c WHERE f.id = c.id
RETURNING c.reason
"""


def record_run(conn: psycopg.Connection, form_id: int, rules: list, evaluated: list[str], since: dt.datetime,
               rules_version: int | None) -> dict:
    """Flags from `run_violations`; `rules` are all of the version's rules, `evaluated` those that ran cleanly.
    A flag opened (or changed) records the rules version that raised it."""
    conn.execute("ANALYZE run_violations")  # a temporary table has no statistics otherwise: joins would guess
    counts = conn.execute(UPSERT_SQL, {
        "form_id": form_id, "ids": [r.id for r in rules], "severities": [r.severity for r in rules],
        "notify": [r.notify for r in rules], "rules_version": rules_version,
    }).fetchone()
    # Fresh statistics for the join below: without them the planner takes this run's new flags for none and
    # picks nested loops that take minutes on a million-response batch. Only after many new flags: sampling
    # the table costs tens of milliseconds, paid by each of hundreds of forms every run otherwise.
    if counts["opened"] + counts["updated"] >= ANALYZE_AFTER_FLAGS:
        conn.execute("ANALYZE flags")
    closed: dict[str, int] = {}
    for row in conn.execute(CLOSE_SQL, {"form_id": form_id, "since": since, "current": [r.id for r in rules],
                                         "evaluated": evaluated}):
        closed[row["reason"]] = closed.get(row["reason"], 0) + 1
    return {"opened": counts["opened"], "updated": counts["updated"], "closed": closed}

"""Backlogs: the age of the oldest item still waiting, per organization, in one set-based statement.

- `sms`: messages `queued` or `sending` (a provider that is down keeps them queued, retrying with backoff);
- `webhook`: deliveries `queued` or `sending`;
- `unvalidated`: responses of forms with rules, received or edited after their form's validation watermark;
- `unexported`: responses of forms with a sheet export, received or edited after the export's watermark.

The operations DAG opens a `backlog.exceeded` notice per organization and backlog whose oldest item is older
than its threshold (FIELDPIPE_BACKLOG_MAX_AGE_<NAME>, minutes) and resolves it once the backlog is back under;
`/metrics` shows the same figures over every organization.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg

from fieldpipe.config import BACKLOGS, OperationsSettings, backlog_env
from fieldpipe.operations.notices import Notice, raise_notice, resolve

log = logging.getLogger("fieldpipe.operations")

# (organization_id, backlog, items, oldest): `items` is NULL for the response backlogs, which are not counted
# (counting every unvalidated response of a large import at each check would cost more than it tells).
BACKLOG_SQL = """
SELECT organization_id, 'sms' AS backlog, count(*) AS items, min(created_at) AS oldest
  FROM sms_messages WHERE status IN ('queued', 'sending') GROUP BY organization_id
UNION ALL
SELECT w.organization_id, 'webhook', count(*), min(d.created_at)
  FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
 WHERE d.status IN ('queued', 'sending') GROUP BY w.organization_id
UNION ALL
SELECT f.organization_id, 'unvalidated', NULL, min(oldest.updated_at)
  FROM forms f LEFT JOIN validation_watermarks v ON v.form_id = f.id
  CROSS JOIN LATERAL (SELECT r.updated_at FROM responses r
                       WHERE r.form_id = f.id AND (v.form_id IS NULL OR r.updated_at > v.validated_through)
                       ORDER BY r.updated_at LIMIT 1) oldest
 WHERE f.rules_version IS NOT NULL GROUP BY f.organization_id
UNION ALL
SELECT f.organization_id, 'unexported', NULL, min(oldest.updated_at)
  FROM sheet_exports e JOIN forms f ON f.id = e.form_id
  CROSS JOIN LATERAL (SELECT r.updated_at FROM responses r
                       WHERE r.form_id = f.id AND (e.watermark IS NULL OR r.updated_at > e.watermark)
                       ORDER BY r.updated_at LIMIT 1) oldest
 GROUP BY f.organization_id
"""


def organization_backlogs(conn: psycopg.Connection) -> list[dict]:
    """Every organization's non-empty backlogs: organization_id, backlog, items, oldest_age_s."""
    return conn.execute(
        f"""SELECT b.organization_id, o.slug AS organization, b.backlog, b.items,
                   extract(epoch FROM now() - b.oldest)::float8 AS oldest_age_s
              FROM ({BACKLOG_SQL}) b JOIN organizations o ON o.id = b.organization_id
             ORDER BY o.slug, b.backlog""").fetchall()


def platform_backlogs(conn: psycopg.Connection) -> list[dict]:
    """Each backlog over every organization (0 when empty): backlog, items, oldest_age_s."""
    rows = {r["backlog"]: r for r in conn.execute(
        f"""SELECT backlog, sum(items)::bigint AS items, extract(epoch FROM now() - min(oldest))::float8 AS oldest_age_s
              FROM ({BACKLOG_SQL}) b GROUP BY backlog""")}
    return [{"backlog": name, "items": (rows[name]["items"] or 0) if name in rows else 0,
             "oldest_age_s": max(rows[name]["oldest_age_s"], 0.0) if name in rows else 0.0} for name in BACKLOGS]


def incident_of(backlog: str) -> str:
    return f"backlog:{backlog}"


def check(conn: psycopg.Connection, settings: OperationsSettings | None = None) -> dict[str, int]:
    """Open a notice for each (organization, backlog) past its threshold; resolve those back under.

    Returns counts: checked (non-empty backlogs), over, opened (new notices), resolved."""
    settings = settings or OperationsSettings.from_env()
    rows = organization_backlogs(conn)
    over = [r for r in rows if r["oldest_age_s"] > settings.backlog_max_age[r["backlog"]].total_seconds()]
    opened = 0
    for row in over:
        limit = settings.backlog_max_age[row["backlog"]]
        age = dt.timedelta(seconds=int(row["oldest_age_s"]))
        count = f"{row['items']} item(s), " if row["items"] is not None else ""
        notice = Notice(
            row["organization_id"], incident_of(row["backlog"]), "backlog.exceeded",
            f"[fieldpipe] {row['organization']}: {row['backlog']} backlog older than {_minutes(limit)}",
            f"The oldest pending {_DESCRIPTIONS[row['backlog']]} of {row['organization']} has waited {age} "
            f"({count}threshold {_minutes(limit)}, {backlog_env(row['backlog'])}).\n{_HINTS[row['backlog']]}\n",
            {"backlog": row["backlog"], "items": row["items"], "oldest_age_s": round(row["oldest_age_s"]),
             "threshold_s": int(limit.total_seconds())})
        opened += raise_notice(conn, notice) is not None
    over_keys = {(r["organization_id"], r["backlog"]) for r in over}
    resolved = 0
    open_rows = conn.execute(
        "SELECT organization_id, incident FROM operator_notices WHERE kind = 'backlog.exceeded' AND resolved_at IS NULL"
    ).fetchall()
    for row in open_rows:
        if (row["organization_id"], row["incident"].removeprefix("backlog:")) not in over_keys:
            resolved += resolve(conn, row["organization_id"], [row["incident"]])
    counts = {"checked": len(rows), "over": len(over), "opened": opened, "resolved": resolved}
    log.info("backlogs: %(checked)d non-empty, %(over)d past their threshold, %(opened)d notice(s) opened, "
             "%(resolved)d resolved", counts)
    return counts


def _minutes(delta: dt.timedelta) -> str:
    return f"{int(delta.total_seconds() // 60)} min"


_DESCRIPTIONS = {"sms": "SMS", "webhook": "webhook delivery", "unvalidated": "response to validate",
                 "unexported": "response to export"}
_HINTS = {
    "sms": "Is the SMS provider reachable? GET /api/v1/messages?status=queued shows each message's last error.",
    "webhook": "Is a receiver down? GET /api/v1/deliveries?status=queued shows each delivery's last error.",
    "unvalidated": "Is validate_responses running? See GET /api/v1/pipeline-failures and the DAG in Airflow.",
    "unexported": "Is export_sheets running? See GET /api/v1/pipeline-failures and the DAG in Airflow.",
}

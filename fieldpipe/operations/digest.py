"""The daily digest: per organization, what failed during the previous UTC day, with counts and how to retry.

One `failures.digest` notice per organization and day (the incident is the day, so running the check again
adds nothing), only for organizations with something failed: SMS that failed or whose outcome is unknown
(by kind), webhook deliveries that failed (by event), and forms a pipeline could not process.
"""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import quote

import psycopg

from fieldpipe.config import OperationsSettings
from fieldpipe.operations.notices import Notice, raise_notice

log = logging.getLogger("fieldpipe.operations")

FAILED_SQL = """
SELECT organization_id, 'sms' AS source, status || ' ' || kind AS what, count(*) AS n
  FROM sms_messages WHERE status IN ('failed', 'unknown') AND updated_at >= %(start)s AND updated_at < %(end)s
 GROUP BY organization_id, status, kind
UNION ALL
SELECT w.organization_id, 'webhook', 'failed ' || d.event, count(*)
  FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
 WHERE d.status = 'failed' AND d.updated_at >= %(start)s AND d.updated_at < %(end)s
 GROUP BY w.organization_id, d.event
UNION ALL
SELECT f.organization_id, 'pipeline', p.pipeline || ': ' || f.slug, p.failures
  FROM pipeline_failures p JOIN forms f ON f.id = p.form_id
 WHERE p.last_failed_at >= %(start)s AND p.last_failed_at < %(end)s
ORDER BY 1, 2, 3
"""


def send_digests(conn: psycopg.Connection, day: dt.date, settings: OperationsSettings | None = None) -> dict[str, int]:
    """Open each organization's digest of `day` (UTC) unless it exists; returns counts."""
    settings = settings or OperationsSettings.from_env()
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=1)
    by_org: dict[int, list[dict]] = {}
    for row in conn.execute(FAILED_SQL, {"start": start, "end": end}):
        by_org.setdefault(row["organization_id"], []).append(row)
    opened = 0
    since = quote(start.isoformat())
    for organization_id, rows in by_org.items():
        sections = []
        for source, title, link in (
                ("sms", "SMS", f"POST {settings.api_url}/api/v1/messages/retry?since={since} (unknown ones: add "
                               "&status=unknown; they may arrive twice)"),
                ("webhook", "Webhook deliveries", f"POST {settings.api_url}/api/v1/deliveries/retry?since={since}"),
                ("pipeline", "Forms a pipeline could not process (failed runs in a row)",
                 f"GET {settings.api_url}/api/v1/pipeline-failures; fix the form or its rules, the next run retries")):
            lines = [f"  {r['what']}: {r['n']}" for r in rows if r["source"] == source]
            if lines:
                sections.append(f"{title}:\n" + "\n".join(lines) + f"\n  retry: {link}")
        total = sum(r["n"] for r in rows)
        notice = Notice(organization_id, f"digest:{day.isoformat()}", "failures.digest",
                        f"[fieldpipe] {total} failure(s) on {day.isoformat()}",
                        f"What failed on {day.isoformat()} (UTC):\n\n" + "\n\n".join(sections) + "\n",
                        {"day": day.isoformat(), "failures": [
                            {"source": r["source"], "what": r["what"], "count": r["n"]} for r in rows]})
        opened += raise_notice(conn, notice) is not None
    log.info("daily digest of %s: %d organization(s) with failures, %d digest(s) opened", day, len(by_org), opened)
    return {"organizations": len(by_org), "opened": opened}

"""Flag notices: tell the collector what to fix (SMS and `flag.opened` webhooks), and say when it is fixed.

`enqueue_flag_notices(conn)` runs after validation (the `flag_callbacks` DAG) and works on sets:

- flag.opened: every response revision that is the response's current one and has open flags whose rule
  says `notify: collector`, and that was never announced, gets ONE notification listing those flags:
  an SMS to the revision's collector phone through the SMS outbox (dedupe key `flag:<response id>:<revision>`)
  and a delivery to each of the organization's webhooks that wants `flag.opened`.
- flag.resolved: an announced revision whose flags are all closed, while the response has no open
  notify-collector flag left (the edit passed, or the rule was removed), gets a `flag.resolved` delivery.
  Validation closes the old revision's flags and writes the new revision's in one transaction, so
  "closed and nothing open" is only seen once the edit has really been validated.

Each announcement is first written to `flag_notifications` (ON CONFLICT DO NOTHING); only rows this run
inserted lead to messages, and the SMS and delivery dedupe keys make even a repeated run harmless.
All of it happens in the caller's transaction: the ledger rows and the outbox rows commit together.
"""

from __future__ import annotations

import logging

import psycopg

from fieldpipe.sms.outbox import NewMessage
from fieldpipe.sms.outbox import enqueue as enqueue_sms
from fieldpipe.webhooks import delivery

log = logging.getLogger("fieldpipe.flag_notices")

SMS_KIND = "flag"
SMS_MESSAGES_LISTED = 3  # the SMS quotes the first few violations; the webhook carries them all

# Record the candidates as announced; only the rows this transaction inserted go on to messages.
ANNOUNCE = """announced AS (
    INSERT INTO flag_notifications (response_id, revision, event)
    SELECT response_id, revision, %(event)s FROM candidates
    ON CONFLICT DO NOTHING
    RETURNING response_id, revision
)"""

OPENED_SQL = """
WITH candidates AS (
    SELECT f.response_id, f.revision
      FROM flags f JOIN responses r ON r.id = f.response_id AND r.revision = f.revision
     WHERE f.status = 'open' AND f.notify = 'collector'
       AND NOT EXISTS (SELECT 1 FROM flag_notifications n
                        WHERE n.response_id = f.response_id AND n.revision = f.revision AND n.event = 'flag.opened')
     GROUP BY f.response_id, f.revision
     ORDER BY f.response_id
     LIMIT %(limit)s
), """ + ANNOUNCE + """
SELECT fm.organization_id, fm.id AS form_id, a.response_id, a.revision, rv.collector_phone,
       'flag.opened:' || a.response_id || ':' || a.revision AS event_key,
       'Please fix ' || fm.slug || ' response ' || left(r.submission_id::text, 8) || ' (revision ' || a.revision
           || '): ' || array_to_string((array_agg(f.message ORDER BY f.severity, f.rule_id))[1:%(listed)s], '; ')
           || CASE WHEN count(*) > %(listed)s THEN ' (+' || (count(*) - %(listed)s) || ' more)' ELSE '' END
           AS sms_body,
       jsonb_build_object(
           'form', fm.slug, 'submission_id', r.submission_id, 'revision', a.revision,
           'collector_id', rv.collector_id,
           'violations', jsonb_agg(jsonb_build_object('rule_id', f.rule_id, 'severity', f.severity,
                                                      'message', f.message) ORDER BY f.severity, f.rule_id),
           'edit', jsonb_build_object('method', 'PATCH',
                                      'path', '/api/v1/forms/' || fm.slug || '/responses/' || r.submission_id)
       ) AS data
  FROM announced a
  JOIN responses r ON r.id = a.response_id
  JOIN forms fm ON fm.id = r.form_id
  JOIN response_revisions rv ON rv.response_id = a.response_id AND rv.revision = a.revision
  JOIN flags f ON f.response_id = a.response_id AND f.revision = a.revision
              AND f.status = 'open' AND f.notify = 'collector'
 GROUP BY fm.organization_id, fm.id, fm.slug, a.response_id, a.revision, r.submission_id, rv.collector_phone,
          rv.collector_id
"""

RESOLVED_SQL = """
WITH candidates AS (
    SELECT n.response_id, n.revision
      FROM flag_notifications n
     WHERE n.event = 'flag.opened'
       AND NOT EXISTS (SELECT 1 FROM flag_notifications done WHERE done.response_id = n.response_id
                          AND done.revision = n.revision AND done.event = 'flag.resolved')
       AND NOT EXISTS (SELECT 1 FROM flags f WHERE f.response_id = n.response_id
                          AND f.status = 'open' AND f.notify = 'collector')
     ORDER BY n.response_id
     LIMIT %(limit)s
), """ + ANNOUNCE + """
SELECT fm.organization_id, fm.id AS form_id, a.response_id, a.revision,
       'flag.resolved:' || a.response_id || ':' || a.revision AS event_key,
       jsonb_build_object(
           'form', fm.slug, 'submission_id', r.submission_id, 'flagged_revision', a.revision,
           'revision', r.revision,
           'resolved', jsonb_agg(jsonb_build_object('rule_id', f.rule_id, 'close_reason', f.close_reason,
                                                    'closed_at', f.closed_at) ORDER BY f.rule_id),
           'response', jsonb_build_object('path', '/api/v1/forms/' || fm.slug || '/responses/' || r.submission_id)
       ) AS data
  FROM announced a
  JOIN responses r ON r.id = a.response_id
  JOIN forms fm ON fm.id = r.form_id
  JOIN flags f ON f.response_id = a.response_id AND f.revision = a.revision AND f.notify = 'collector'
 GROUP BY fm.organization_id, fm.id, fm.slug, a.response_id, a.revision, r.submission_id, r.revision
"""


def _events(rows: list[dict], event: str) -> list[dict]:
    return [{"organization_id": r["organization_id"], "form_id": r["form_id"], "event": event,
             "event_key": r["event_key"], "data": r["data"]} for r in rows]


def enqueue_flag_notices(conn: psycopg.Connection, batch: int = 5000,
            policy: delivery.DeliveryPolicy = delivery.DeliveryPolicy()) -> dict[str, int]:
    """Announce new flag sets and resolutions (batch by batch, each in its own transaction); returns counts."""
    counts = {"opened": 0, "sms": 0, "resolved": 0, "deliveries": 0}
    for sql, event in ((OPENED_SQL, "flag.opened"), (RESOLVED_SQL, "flag.resolved")):
        while True:
            with conn.transaction():
                rows = conn.execute(sql, {"limit": batch, "listed": SMS_MESSAGES_LISTED, "event": event}).fetchall()
                if event == "flag.opened":
                    counts["opened"] += len(rows)
                    counts["sms"] += enqueue_sms(conn, [
                        NewMessage(dedupe_key=f"flag:{r['response_id']}:{r['revision']}", kind=SMS_KIND,
                                   organization_id=r["organization_id"], recipient=r["collector_phone"],
                                   body=r["sms_body"]) for r in rows if r["collector_phone"]])
                else:
                    counts["resolved"] += len(rows)
                counts["deliveries"] += delivery.enqueue(conn, _events(rows, event), policy)
            if len(rows) < batch:
                break
    log.info("flag notices: %(opened)d flag sets announced (%(sms)d SMS queued), %(resolved)d resolved, "
             "%(deliveries)d webhook deliveries queued", counts)
    return counts

"""Notices to operators: one per incident, by a signed webhook and by mail, recorded, retried, never raised.

An incident is something that needs a person (a task that failed after its retries, a backlog past its
age). It opens one notice per organization concerned (organization None: the platform's operators,
FIELDPIPE_OPERATOR_EMAILS) and stays open until it is resolved (the task succeeds again, the backlog
drains); the same incident raised again meanwhile adds nothing, so a failure repeating every run is
announced once. An incident left open for a day is announced again.

Each notice goes out twice, independently:
- as the webhook event `kind` (`pipeline.failed`, `backlog.exceeded`, `failures.digest`) to each of the
  organization's webhooks subscribed to it: a delivery in the webhooks outbox, signed and retried there;
- by mail to the organization's `notice_emails` (set with PUT /api/v1/notices/recipients), sent at once
  when possible and otherwise retried by the operations DAG with backoff (`email_status`, `email_attempts`,
  `email_last_error` record every outcome).
Nothing here raises to its caller because a receiver is down: a failure callback must never fail the DAG.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Iterable

import psycopg

from fieldpipe import paging
from fieldpipe.answers import EMAIL_PATTERN
from fieldpipe.config import OperationsSettings
from fieldpipe.domains import json_value
from fieldpipe.problems import FieldError, invalid
from fieldpipe.retry import Backoff
from fieldpipe.webhooks import delivery

log = logging.getLogger("fieldpipe.notices")

KINDS = ("pipeline.failed", "backlog.exceeded", "failures.digest")
REMIND_AFTER = timedelta(days=1)  # an incident still open after this is announced again
EMAIL_BACKOFF = Backoff(60.0, 3600.0)
MAX_RECIPIENTS = 20

# to, subject, text; raises when the message could not be handed over
Mailer = Callable[[list[str], str, str], None]


@dataclass(frozen=True)
class Notice:
    organization_id: int | None
    incident: str
    kind: str
    subject: str
    body: str
    data: dict = field(default_factory=dict)


def raise_notice(conn: psycopg.Connection, notice: Notice) -> int | None:
    """Open the notice unless its incident is already open (then None); queue its webhook deliveries."""
    with conn.transaction():
        conn.execute(
            """UPDATE operator_notices SET resolved_at = now()
                WHERE coalesce(organization_id, 0) = coalesce(%s, 0) AND incident = %s AND resolved_at IS NULL
                  AND created_at < now() - %s""",
            (notice.organization_id, notice.incident, REMIND_AFTER))
        row = conn.execute(
            """INSERT INTO operator_notices (organization_id, incident, kind, subject, body, data, email_status)
               SELECT %(org)s, %(incident)s, %(kind)s, %(subject)s, %(body)s, %(data)s,
                      CASE WHEN cardinality(coalesce(o.notice_emails, %(platform)s)) > 0 THEN 'pending' ELSE 'none' END
                 FROM (SELECT 1) one LEFT JOIN organizations o ON o.id = %(org)s
               ON CONFLICT (coalesce(organization_id, 0), incident) WHERE resolved_at IS NULL DO NOTHING
               RETURNING id""",
            {"org": notice.organization_id, "incident": notice.incident, "kind": notice.kind,
             "subject": notice.subject, "body": notice.body, "data": json.dumps(notice.data, default=json_value),
             "platform": OperationsSettings.from_env().operator_emails}).fetchone()
        if row is None:
            return None
        if notice.organization_id is not None:
            delivery.enqueue(conn, [{"organization_id": notice.organization_id, "event": notice.kind,
                                     "event_key": f"notice:{row['id']}",
                                     "data": {"subject": notice.subject, "text": notice.body, **notice.data}}])
    log.info("notice %s opened: %s", row["id"], notice.subject)
    return row["id"]


def resolve(conn: psycopg.Connection, organization_id: int | None, incidents: Iterable[str],
            *, any_organization: bool = False) -> int:
    """Close the open notices of these incidents (of one organization, or of every one); returns how many."""
    incidents = list(incidents)
    if not incidents:
        return 0
    with conn.transaction():
        return conn.execute(
            """UPDATE operator_notices SET resolved_at = now()
                WHERE incident = ANY (%s) AND resolved_at IS NULL
                  AND (%s OR coalesce(organization_id, 0) = coalesce(%s, 0))""",
            (incidents, any_organization, organization_id)).rowcount


def send_due_emails(conn: psycopg.Connection, mailer: Mailer, *, notice_ids: list[int] | None = None,
                    limit: int = 100) -> dict[str, int]:
    """Mail the notices that are due (or just these), one claim at a time; record each outcome.

    A failed hand-over is retried with backoff until `email_max_attempts`, then the notice is `failed`.
    """
    settings = OperationsSettings.from_env()
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for _ in range(limit):
        with conn.transaction():
            row = conn.execute(
                """SELECT n.id, n.subject, n.body, n.email_attempts,
                          coalesce(o.notice_emails, %s::text[]) AS recipients
                     FROM operator_notices n LEFT JOIN organizations o ON o.id = n.organization_id
                    WHERE n.email_status = 'pending' AND n.email_next_attempt_at <= now()
                      AND (%s::bigint[] IS NULL OR n.id = ANY (%s))
                    ORDER BY n.email_next_attempt_at, n.id
                    LIMIT 1 FOR UPDATE OF n SKIP LOCKED""",
                (settings.operator_emails, notice_ids, notice_ids)).fetchone()
            if row is None:
                break
            error = None
            if not row["recipients"]:
                status = "none"
            else:
                try:
                    mailer(list(row["recipients"]), row["subject"], row["body"])
                    status = "sent"
                except Exception as err:  # any failure to hand over is recorded and retried, never raised
                    error = f"{type(err).__name__}: {err}"[:500]
                    status = "failed" if row["email_attempts"] + 1 >= settings.email_max_attempts else "pending"
            conn.execute(
                """UPDATE operator_notices
                      SET email_status = %s, email_attempts = email_attempts + 1, email_last_error = %s,
                          emailed_at = CASE WHEN %s = 'sent' THEN now() END,
                          email_next_attempt_at = now() + make_interval(secs => %s)
                    WHERE id = %s""",
                (status, error, status, EMAIL_BACKOFF.delay(row["email_attempts"] + 1), row["id"]))
        if status == "sent":
            counts["sent"] += 1
        elif status == "pending":
            counts["retry"] += 1
            log.warning("notice %s: mail not handed over (%s); retried later", row["id"], error)
        elif status == "failed":
            counts["failed"] += 1
            log.error("notice %s: mail given up after %d attempts: %s", row["id"], row["email_attempts"] + 1, error)
    return counts


def smtp_mailer(conn_id: str) -> Mailer:
    """Mail through Airflow's SMTP notifier and the named SMTP connection (host, port, login, password,
    extra `from_email`, `disable_ssl`, `disable_tls`, `timeout`, `retry_limit`)."""

    def send(to: list[str], subject: str, text: str) -> None:
        from html import escape

        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        # subject, body and sender are all given, so the notifier renders no template: the text of an
        # error (which may contain braces) is sent as it is.
        SmtpNotifier(to=to, from_email=_sender(conn_id), subject=subject, smtp_conn_id=conn_id,
                     html_content=f"<pre>{escape(text)}</pre>").notify({})

    return send


def _sender(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(conn_id).extra_dejson
    return extra.get("from_email") or OperationsSettings.from_env().notice_from


# --- recipients and the listing (admin API) -------------------------------------------------------------

def get_recipients(conn: psycopg.Connection, organization_id: int) -> dict:
    row = conn.execute("SELECT notice_emails FROM organizations WHERE id = %s", (organization_id,)).fetchone()
    return {"emails": list(row["notice_emails"])}


def set_recipients(conn: psycopg.Connection, organization_id: int, payload: object) -> dict:
    emails = payload.get("emails") if isinstance(payload, dict) else None
    if not isinstance(emails, list) or not all(isinstance(e, str) for e in emails):
        raise invalid([FieldError("emails", "type", "must be a list of email addresses (empty to mail no one)")])
    errors = [FieldError(f"emails[{i}]", "email", "is not an email address") for i, e in enumerate(emails)
              if not EMAIL_PATTERN.fullmatch(e) or len(e) > 320]
    if len(emails) > MAX_RECIPIENTS:
        errors.append(FieldError("emails", "max_items", f"at most {MAX_RECIPIENTS} addresses"))
    if errors:
        raise invalid(errors)
    unique = list(dict.fromkeys(emails))
    conn.execute("UPDATE organizations SET notice_emails = %s WHERE id = %s", (unique, organization_id))
    return {"emails": unique}


NOTICES = paging.Keyset("notices", int)  # newest first: ORDER BY id DESC


def notice_body(row: dict) -> dict:
    return {name: row[name] for name in ("id", "incident", "kind", "subject", "body", "data", "email_status",
                                         "email_attempts", "email_last_error", "emailed_at", "created_at",
                                         "resolved_at")}


def list_notices(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute(
        """SELECT * FROM operator_notices WHERE organization_id = %s AND (%s::bigint IS NULL OR id < %s)
            ORDER BY id DESC LIMIT %s""",
        (organization_id, *(2 * [page.after[0] if page.after else None]), page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=notice_body)

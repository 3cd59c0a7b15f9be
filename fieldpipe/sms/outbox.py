"""The SMS outbox: the persisted intent of every message and its state machine.

    queued --claim--> sending --> sent
                                  failed   (permanent error, too many segments, or out of attempts)
                                  unknown  (the provider may have taken it: never resent without an operator)
                                  queued   (retryable error, at a later `next_attempt_at`)
    queued --cancel--> cancelled  (its announcement was cancelled before it went out)

Producers call `enqueue` inside their own transaction; the dedupe key makes producing twice harmless.
Dispatchers `claim_due` a batch (FOR UPDATE SKIP LOCKED, so two never take the same row) leased until
`lease_until`, send, and `record_outcomes` for the batch in one statement; each attempt is also kept in
`sms_attempts`. The words shared with the webhook deliveries (next attempt, lease, attempt history, `retry`)
are `fieldpipe.outbox`'s.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Sequence

import psycopg

from fieldpipe import outbox, paging
from fieldpipe.announcements.policy import POLICY_KINDS
from fieldpipe.answers import AnswerError, normalize_phone
from fieldpipe.config import Settings, SmsSettings
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.sms.providers import Provider, SendResult
from fieldpipe.sms.segments import count_segments

STATUSES = ("queued", "sending", "sent", "failed", "unknown", "cancelled")
RETRYABLE = ("unknown", "failed")  # what an operator may retry (`retry_message`)


@dataclass(frozen=True)
class NewMessage:
    dedupe_key: str  # e.g. receipt:<response id>, flag:<flag id>, announcement:<id>:<phone>
    kind: str
    organization_id: int
    recipient: str
    body: str
    template: str | None = None


ENQUEUE_SQL = """
INSERT INTO sms_messages (organization_id, dedupe_key, kind, recipient, body, template, encoding, segments,
                          status, last_error)
SELECT * FROM unnest(%(orgs)s::bigint[], %(keys)s::text[], %(kinds)s::text[], %(recipients)s::text[],
                     %(bodies)s::text[], %(templates)s::text[], %(encodings)s::text[], %(segments)s::int[],
                     %(statuses)s::text[], %(errors)s::text[])
ON CONFLICT (dedupe_key) DO NOTHING
"""


def enqueue(conn: psycopg.Connection, messages: Sequence[NewMessage], max_segments: int | None = None) -> int:
    """Write the messages that are not in the outbox yet (by dedupe key); return how many were new.

    A message that can never be sent (recipient not a phone number, body over `max_segments`) is stored
    as `failed` with the reason, so it is visible rather than silently dropped or cut.
    """
    if max_segments is None:
        max_segments = Settings.from_env().sms_max_segments
    columns: dict[str, list] = {k: [] for k in ("orgs", "keys", "kinds", "recipients", "bodies", "templates",
                                                "encodings", "segments", "statuses", "errors")}
    for message in messages:
        segments = count_segments(message.body)
        recipient, error = message.recipient, None
        try:
            recipient = normalize_phone(message.recipient)
        except AnswerError as err:
            error = f"recipient {err}"
        if error is None and segments.count > max_segments:
            error = (f"body needs {segments.count} {segments.encoding} segments ({segments.units} units), "
                     f"over the maximum of {max_segments}; shorten the template rather than cut the message")
        for name, value in (("orgs", message.organization_id), ("keys", message.dedupe_key),
                            ("kinds", message.kind), ("recipients", recipient), ("bodies", message.body),
                            ("templates", message.template), ("encodings", segments.encoding),
                            ("segments", segments.count), ("statuses", "failed" if error else "queued"),
                            ("errors", error)):
            columns[name].append(value)
    if not messages:
        return 0
    return conn.execute(ENQUEUE_SQL, columns).rowcount


# Due messages are claimed FOR UPDATE SKIP LOCKED (two dispatchers never take the same row). Messages of the
# kinds an organization's SMS policy governs (fieldpipe/announcements/policy.py) are held instead of claimed
# while quiet hours hold in the recipient's time zone (until they end), or once the recipient has had the day's
# cap of them (until the next local midnight): their next_attempt_at moves, so nothing polls them meanwhile.
POLICY_KINDS_SQL = "(" + ", ".join(f"'{kind}'" for kind in POLICY_KINDS) + ")"
CLAIM_SQL = f"""
WITH due AS (
    SELECT id, organization_id, recipient, kind, time_zone FROM sms_messages
     WHERE {outbox.due()}
     ORDER BY next_attempt_at, id
     LIMIT %(limit)s
     FOR UPDATE SKIP LOCKED
), governed AS (
    SELECT d.id, d.recipient, d.organization_id, p.daily_cap, l.tz,
           sms_quiet_until(clock_timestamp(), l.tz, p.quiet_start, p.quiet_end) AS quiet_until,
           (date_trunc('day', clock_timestamp() AT TIME ZONE l.tz) AT TIME ZONE l.tz) AS day_start,
           row_number() OVER (PARTITION BY d.organization_id, d.recipient ORDER BY d.id) AS nth_in_claim
      FROM due d JOIN sms_policies p ON p.organization_id = d.organization_id
           CROSS JOIN LATERAL (SELECT coalesce(d.time_zone, p.time_zone) AS tz) l
     WHERE d.kind IN {POLICY_KINDS_SQL} AND (p.quiet_start IS NOT NULL OR p.daily_cap IS NOT NULL)
), held AS (
    SELECT g.id, coalesce(g.quiet_until, g.day_start + interval '1 day') AS until
      FROM governed g
     WHERE g.quiet_until IS NOT NULL
        OR g.daily_cap < g.nth_in_claim + (
               SELECT count(*) FROM sms_messages s
                WHERE s.recipient = g.recipient AND s.kind IN {POLICY_KINDS_SQL}
                  AND s.status IN ('sending', 'sent', 'unknown') AND s.updated_at >= g.day_start
                  AND s.organization_id = g.organization_id)
), deferred AS (
    UPDATE sms_messages m SET next_attempt_at = h.until, updated_at = clock_timestamp()
      FROM held h WHERE m.id = h.id
)
UPDATE sms_messages m
   SET {outbox.claim("m", "%(lease_s)s")}, claim_token = %(token)s, handed_at = NULL, provider = %(provider)s
  FROM due WHERE m.id = due.id AND due.id NOT IN (SELECT id FROM held)
RETURNING m.id, m.kind, m.recipient, m.body, m.attempts, m.claim_token, m.sender_id, m.dlt_template_id
"""


def claim_due(conn: psycopg.Connection, provider: str, limit: int, lease_s: float) -> list[dict]:
    """Move up to `limit` due messages to `sending` for this claim, leased for `lease_s` seconds (holding the
    policy's announcements in quiet hours or over the daily cap); commit before sending them."""
    rows = conn.execute(CLAIM_SQL, {"limit": limit, "token": uuid.uuid4(), "provider": provider,
                                    "lease_s": lease_s}).fetchall()
    return sorted(rows, key=lambda r: r["id"])


def mark_handed(conn: psycopg.Connection, messages: Sequence[dict]) -> None:
    """Record that these claimed rows are about to go to the provider; commit before sending them."""
    conn.execute(
        """UPDATE sms_messages m SET handed_at = clock_timestamp()
             FROM unnest(%s::bigint[], %s::uuid[]) AS c(id, claim_token)
            WHERE m.id = c.id AND m.claim_token = c.claim_token AND m.status = 'sending'""",
        ([m["id"] for m in messages], [m["claim_token"] for m in messages]),
    )


RECORD_SQL = f"""
WITH outcome AS (
    SELECT * FROM unnest(%(ids)s::bigint[], %(tokens)s::uuid[], %(statuses)s::text[], %(delays)s::float8[],
                         %(message_ids)s::text[], %(errors)s::text[])
        AS t(id, claim_token, status, delay_s, provider_message_id, error)
), updated AS (
    UPDATE sms_messages m
       SET status = o.status,
           next_attempt_at = CASE WHEN o.status = 'queued' THEN {outbox.after("o.delay_s")}
                                  ELSE m.next_attempt_at END,
           lease_until = NULL,
           provider_message_id = coalesce(o.provider_message_id, m.provider_message_id),
           last_error = o.error,
           sent_at = CASE WHEN o.status = 'sent' THEN clock_timestamp() END,
           updated_at = clock_timestamp()
      FROM outcome o
     -- a claim expired meanwhile (and perhaps resent by an operator) must not be overwritten
     WHERE m.id = o.id AND m.claim_token = o.claim_token AND m.status IN ('sending', 'unknown')
    RETURNING m.id, m.attempts, m.provider
)
INSERT INTO sms_attempts (message_id, attempt, provider, outcome, http_status, error_code, error, retry_after_s)
SELECT u.id, u.attempts, u.provider, a.outcome, a.http_status, a.error_code, a.error, a.retry_after_s
  FROM updated u
  JOIN unnest(%(ids)s::bigint[], %(outcomes)s::text[], %(http_statuses)s::int[], %(codes)s::text[],
              %(errors)s::text[], %(retry_afters)s::float8[])
       AS a(id, outcome, http_status, error_code, error, retry_after_s) ON a.id = u.id
"""


def record_outcomes(conn: psycopg.Connection, results: Sequence[tuple[dict, SendResult]],
                    settings: SmsSettings) -> list[str]:
    """Store outcomes in one statement; return each message's outcome (retry = back to queued for later)."""
    outcomes = []
    params: dict[str, list] = {k: [] for k in ("ids", "tokens", "statuses", "delays", "message_ids", "errors",
                                               "outcomes", "http_statuses", "codes", "retry_afters")}
    for message, result in results:
        outcome, status, delay = result.outcome, result.outcome, 0.0
        error = result.error
        if outcome == "retry":
            if message["attempts"] >= settings.max_attempts:
                outcome = status = "failed"
                error = f"gave up after {message['attempts']} attempts; last error: {result.error}"
            else:
                status, delay = "queued", settings.backoff.delay(message["attempts"], result.retry_after)
        outcomes.append(outcome)
        for name, value in (("ids", message["id"]), ("tokens", message["claim_token"]), ("statuses", status),
                            ("delays", delay), ("message_ids", result.provider_message_id), ("errors", error),
                            ("outcomes", outcome), ("http_statuses", result.http_status),
                            ("codes", result.error_code), ("retry_afters", result.retry_after)):
            params[name].append(value)
    if results:
        conn.execute(RECORD_SQL, params)
    return outcomes


SETTLE_SQL = """
WITH settled AS (
    UPDATE sms_messages m
       SET status = s.status, updated_at = clock_timestamp(), next_attempt_at = clock_timestamp(),
           lease_until = NULL,
           -- an attempt that never reached the provider does not count
           attempts = m.attempts - CASE WHEN m.handed_at IS NULL THEN 1 ELSE 0 END,
           sent_at = CASE WHEN s.status = 'sent' THEN clock_timestamp() END,
           last_error = CASE WHEN s.status = 'unknown'
                             THEN 'the dispatcher stopped after handing it to the provider; it may have been sent'
                        END
      FROM unnest(%(ids)s::bigint[], %(statuses)s::text[], %(reasons)s::text[]) AS s(id, status, reason)
     WHERE m.id = s.id AND m.status = 'sending'
    RETURNING m.id, m.attempts, m.provider, s.status, s.reason
)
INSERT INTO sms_attempts (message_id, attempt, provider, outcome, error)
SELECT id, attempts, provider, CASE status WHEN 'queued' THEN 'retry' ELSE status END, 'claim expired: ' || reason
  FROM settled
"""


def settle_abandoned(conn: psycopg.Connection, provider: Provider) -> dict[str, int]:
    """Settle rows left `sending` past their lease (their dispatcher was killed), never resending blindly.

    A row not yet handed to the provider goes back to `queued`. A handed row is `sent` or `queued` when the
    provider can say whether it has it (`file`), and otherwise `unknown`, for an operator to check and resend.
    """
    rows = conn.execute(
        f"""SELECT id, provider, handed_at FROM sms_messages WHERE {outbox.lease_expired()}
             ORDER BY id FOR UPDATE SKIP LOCKED"""
    ).fetchall()
    handed = [r["id"] for r in rows if r["handed_at"] is not None and r["provider"] == provider.name]
    confirmed = provider.confirm(handed) if handed else set()
    statuses, reasons = [], []
    for row in rows:
        if row["handed_at"] is None:
            status, reason = "queued", "never handed to the provider"
        elif row["provider"] == provider.name and confirmed is not None:
            found = row["id"] in confirmed
            status, reason = ("sent", "the provider has it") if found else ("queued", "the provider never got it")
        else:
            status, reason = "unknown", "handed to the provider, outcome unknown"
        statuses.append(status)
        reasons.append(reason)
    if rows:
        conn.execute(SETTLE_SQL, {"ids": [r["id"] for r in rows], "statuses": statuses, "reasons": reasons})
    return {s: statuses.count(s) for s in ("sent", "queued", "unknown")}


def requeue(conn: psycopg.Connection, organization_id: int | None, *, message_ids: list[int] | None = None,
            replay: outbox.ReplayFilter | None = None, reason: str = "resent by an operator") -> list[int]:
    """Queue retryable messages again, now, with a fresh attempt count, in one statement; history is kept
    (an attempt `resend` each). Either the given ids (unknown or failed) or every message `replay` selects.
    `organization_id` None (the operator's CLI) reaches any organization's messages. Returns the ids."""
    rows = conn.execute(
        """WITH picked AS (
               SELECT id, attempts, provider FROM sms_messages
                WHERE (%(org)s::bigint IS NULL OR organization_id = %(org)s)
                  AND (%(ids)s::bigint[] IS NULL OR id = ANY (%(ids)s))
                  AND status = ANY (%(statuses)s)
                  AND (%(since)s::timestamptz IS NULL OR updated_at >= %(since)s)
                  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
                FOR UPDATE
           ), history AS (
               INSERT INTO sms_attempts (message_id, attempt, provider, outcome, error)
               SELECT id, attempts, provider, 'resend', %(reason)s FROM picked
           )
           UPDATE sms_messages m SET status = 'queued', attempts = 0, next_attempt_at = clock_timestamp(),
                  claim_token = NULL, lease_until = NULL, last_error = NULL, updated_at = clock_timestamp()
             FROM picked WHERE m.id = picked.id
           RETURNING m.id""",
        {"org": organization_id, "ids": message_ids, "reason": reason,
         "statuses": [replay.status] if replay else list(RETRYABLE),
         "since": replay.since if replay else None, "kind": replay.kind if replay else None},
    ).fetchall()
    return sorted(r["id"] for r in rows)


def retry_message(conn: psycopg.Connection, organization_id: int | None, message_id: int,
                  reason: str = "resent by an operator") -> dict:
    """Queue an `unknown` or `failed` message again (`requeue`); 404 when not the organization's, 409 when
    it is in another state. The replay verb and its 409 are the webhook deliveries' (`delivery.retry_delivery`)."""
    if not requeue(conn, organization_id, message_ids=[message_id], reason=reason):
        current = get_message(conn, organization_id, message_id)
        raise outbox.not_retryable(f"message {message_id}", current["status"], f"{' or '.join(RETRYABLE)} messages")
    return get_message(conn, organization_id, message_id)


MESSAGE_COLUMNS = """id, dedupe_key, kind, recipient, body, template, encoding, segments, status, attempts,
       next_attempt_at, lease_until, provider, provider_message_id, last_error, created_at, updated_at, sent_at"""
MESSAGES = paging.Keyset("messages", int)


def message_body(row: dict, history: list[dict] | None = None) -> dict:
    """The public shape of a message; `history` (its attempts, oldest first) only when reading one message."""
    body = {name: row[name] for name in ("id", "dedupe_key", "kind", "recipient", "body", "template", "encoding",
                                         "segments", "status", "attempts", "next_attempt_at", "lease_until",
                                         "provider",
                                         "provider_message_id", "last_error", "created_at", "updated_at", "sent_at")}
    if history is not None:
        body["history"] = [outbox.attempt_body(a) for a in history]
    return body


def get_message(conn: psycopg.Connection, organization_id: int | None, message_id: int) -> dict:
    scope = "AND organization_id = %(org)s" if organization_id is not None else ""
    row = conn.execute(f"SELECT {MESSAGE_COLUMNS} FROM sms_messages WHERE id = %(id)s {scope}",
                       {"id": message_id, "org": organization_id}).fetchone()
    if row is None:
        raise not_found(f"message {message_id}")
    history = conn.execute(
        """SELECT attempt, created_at AS at, outcome, http_status AS status_code, error_code, error,
                  NULL::int AS duration_ms, retry_after_s
             FROM sms_attempts WHERE message_id = %s ORDER BY id""",
        (message_id,),
    ).fetchall()
    return message_body(row, history)


def list_messages(conn: psycopg.Connection, organization_id: int, page: paging.Page, *,
                  status: str | None = None, kind: str | None = None) -> dict:
    """A page of messages, oldest first, filtered by status and kind."""
    if status is not None and status not in STATUSES:
        raise invalid([FieldError("status", "enum", f"must be one of {', '.join(STATUSES)}")])
    rows = conn.execute(
        f"""SELECT {MESSAGE_COLUMNS} FROM sms_messages
             WHERE organization_id = %(org)s AND (%(status)s::text IS NULL OR status = %(status)s)
               AND (%(kind)s::text IS NULL OR kind = %(kind)s) AND id > %(after)s
             ORDER BY id LIMIT %(limit)s""",
        {"org": organization_id, "status": status, "kind": kind, "after": page.after[0] if page.after else 0,
         "limit": page.fetch},
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=message_body)


def status_counts(conn: psycopg.Connection) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for row in conn.execute("SELECT status, count(*) AS n FROM sms_messages GROUP BY status"):
        counts[row["status"]] = row["n"]
    return counts


def next_due_in(conn: psycopg.Connection) -> float | None:
    """Seconds until the next queued message is due (0 if one is due now), None when none is queued."""
    row = conn.execute(
        """SELECT CASE WHEN count(*) > 0  -- greatest() would turn "none queued" (NULL) into 0
                       THEN greatest(0, extract(epoch FROM min(next_attempt_at) - clock_timestamp()))::float8
                  END AS wait_s
             FROM sms_messages WHERE status = 'queued'"""
    ).fetchone()
    return row["wait_s"]

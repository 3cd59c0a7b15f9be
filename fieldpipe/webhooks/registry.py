"""Register, list and remove an organization's webhooks. The signing secret is returned once, at registration.

A form's `webhook` task owns a webhook of its own (fieldpipe/tasks/builtin.py), managed through the task.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fieldpipe import paging
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.webhooks.secret_box import seal
from fieldpipe.webhooks.signing import new_secret
from fieldpipe.webhooks.targets import Resolver, TargetRefused, check_target, system_resolver

# Flag events (flag_callbacks) and the operators' notices (fieldpipe.operations.notices.KINDS).
EVENTS = ("flag.opened", "flag.resolved", "pipeline.failed", "backlog.exceeded", "failures.digest")

_PUBLIC_COLUMNS = "id, url, events, created_at, consecutive_failures, open_until"
WEBHOOKS = paging.Keyset("webhooks", int)


def webhook_body(row: dict) -> dict:
    return {"id": row["id"], "url": row["url"], "events": row["events"], "created_at": row["created_at"],
            "circuit": {"consecutive_failures": row["consecutive_failures"], "open_until": row["open_until"]}}


def _check_payload(payload: Any, resolver: Resolver) -> tuple[str, list[str]]:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be an object with url and events")])
    errors = []
    events = payload.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        errors.append(FieldError("events", "required", f"must be a non-empty list of {', '.join(EVENTS)}"))
    elif unknown := sorted(set(events) - set(EVENTS)):
        errors.append(FieldError("events", "unknown_event", f"unknown event(s) {', '.join(unknown)}; "
                                                            f"known: {', '.join(EVENTS)}"))
    try:
        check_target(payload.get("url"), resolver=resolver)
    except TargetRefused as refused:
        errors.append(FieldError("url", refused.code, refused.message))
    if errors:
        raise invalid(errors)
    return payload["url"], sorted(set(events), key=EVENTS.index)


def register_webhook(conn: psycopg.Connection, organization_id: int, payload: Any,
                     resolver: Resolver = system_resolver) -> dict:
    """Check the URL (shape, scheme, resolved address) and store the webhook; the answer carries the secret."""
    secret = new_secret()
    sealed = seal(secret)  # first: a server that cannot keep secrets says so before judging the request
    url, events = _check_payload(payload, resolver)
    row = conn.execute(
        f"""INSERT INTO webhooks (organization_id, url, events, secret_sealed) VALUES (%s, %s, %s, %s)
            RETURNING {_PUBLIC_COLUMNS}""",
        (organization_id, url, events, sealed),
    ).fetchone()
    return {**webhook_body(row), "secret": secret}


def list_webhooks(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute(
        f"""SELECT {_PUBLIC_COLUMNS} FROM webhooks WHERE organization_id = %s AND deleted_at IS NULL AND task_id IS NULL AND id > %s
             ORDER BY id LIMIT %s""",
        (organization_id, page.after[0] if page.after else 0, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=webhook_body)


def delete_webhook(conn: psycopg.Connection, organization_id: int, webhook_id: int) -> None:
    """Remove the webhook; deliveries not yet made are cancelled, past ones stay readable."""
    row = conn.execute(
        """UPDATE webhooks SET deleted_at = now()
           WHERE id = %s AND organization_id = %s AND deleted_at IS NULL AND task_id IS NULL RETURNING id""",
        (webhook_id, organization_id),
    ).fetchone()
    if row is None:
        raise not_found(f"webhook {webhook_id}")
    conn.execute(
        """UPDATE webhook_deliveries SET status = 'cancelled', updated_at = now(), lease_until = NULL,
                  last_error = 'the webhook was removed'
           WHERE webhook_id = %s AND status = 'queued'""",
        (webhook_id,),
    )

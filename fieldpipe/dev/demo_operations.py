"""Demo: the demo organization's operators hear about failures and backlogs locally (issue 22).

Notices are mailed to ops@demo.example (kept as files in var/mail/ by the local mail sink) and posted, signed,
to the local webhook receiver (var/log/webhook-receiver.log prints each call and whether its signature
verifies with the secret kept in var/demo_webhook_secret). Idempotent: settings changed through the API stay.
"""

from __future__ import annotations

import os

import psycopg

from fieldpipe.config import var_dir
from fieldpipe.operations.notices import KINDS
from fieldpipe.webhooks.registry import register_webhook

LOCAL_WEBHOOK_PORT = 8099
DEMO_OPERATOR_EMAIL = "ops@demo.example"


def demo_webhook_secret_file():
    return var_dir() / "demo_webhook_secret"


def load_demo_operations(conn: psycopg.Connection, organization_id: int) -> None:
    conn.execute("UPDATE organizations SET notice_emails = %s WHERE id = %s AND notice_emails = '{}'",
                 ([DEMO_OPERATOR_EMAIL], organization_id))
    subscribed = conn.execute(
        "SELECT 1 FROM webhooks WHERE organization_id = %s AND deleted_at IS NULL AND events && %s",
        (organization_id, list(KINDS))).fetchone()
    if subscribed:
        return
    webhook = register_webhook(conn, organization_id, {
        "url": f"http://127.0.0.1:{LOCAL_WEBHOOK_PORT}/notices", "events": list(KINDS)})
    path = demo_webhook_secret_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(webhook["secret"])
    os.chmod(path, 0o600)

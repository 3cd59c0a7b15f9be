"""What storing a response or an edit does for the form's tasks, in the same transaction.

Every enabled async task that wants the event gets a queued run in the ledger (the pipeline runs it). A
receipt is the exception that is not left waiting for a pipeline: it is queued in the SMS outbox right here
(the dispatcher, woken by its asset, sends it within seconds) and its run is recorded done.
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping, Sequence

import psycopg

from fieldpipe.sms.receipts import enqueue_receipts, receipt_messages
from fieldpipe.tasks import ledger

RECEIPT_KIND = "sms_receipt"


def on_created(conn: psycopg.Connection, form: dict, created: Mapping[uuid.UUID, dict],
               submissions: Sequence[Any], send_receipts: bool = True) -> None:
    """`created` maps submission ids to the rows `responses.store` inserted; `submissions` are the checked
    submissions. `send_receipts=False` (imports that turn receipts off) queues no receipt and records none."""
    if not created:
        return
    ids = [(row["id"], 1) for row in created.values()]
    ledger.enqueue_runs(conn, form["id"], "response.created", ids, exclude_kinds=(RECEIPT_KIND,))
    receipt = conn.execute(
        """SELECT id, config FROM form_tasks WHERE form_id = %s AND kind = %s AND enabled
            ORDER BY id LIMIT 1""", (form["id"], RECEIPT_KIND)).fetchone()
    if receipt is None or not send_receipts:
        return
    messages = receipt_messages(form["organization_id"], receipt["config"], form["questions"], (
        (created[s.submission_id]["id"], s.submission_id, s.answers) for s in submissions if s.submission_id in created))
    enqueue_receipts(conn, messages)
    ledger.record_finished(conn, receipt["id"], RECEIPT_KIND, [
        (response_id, 1, "done", {"sms": message.dedupe_key}, None) if message else
        (response_id, 1, "skipped", {"skipped": "no phone number in the answer"}, None)
        for response_id, message in messages.items()])


def on_updated(conn: psycopg.Connection, form_id: int, response_id: int, revision: int) -> None:
    ledger.enqueue_runs(conn, form_id, "response.updated", [(response_id, revision)])

"""SMS messages of the caller's organization (admin): list by status and kind, one with its history, retry."""

from flask import Blueprint, request

from api import schemas
from api.context import endpoint
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.outbox import replay_filter
from fieldpipe.sms import outbox

bp = Blueprint("messages", __name__, url_prefix="/api/v1/messages")


@bp.get("")
@operation("List the organization's SMS messages, oldest first", listing=schemas.Message,
           query=(Query("status", {"enum": list(outbox.STATUSES)}, "Only messages in this state"),
                  Query("kind", {"type": "string", "minLength": 1}, "Only this kind: receipt, flag, announcement, ...")))
@endpoint(admin=True)
def list_messages(conn, caller):
    return outbox.list_messages(conn, caller.organization_id, paging.from_query(request.args, outbox.MESSAGES),
                                status=request.args.get("status"), kind=request.args.get("kind"))


@bp.get("/<int:message_id>")
@operation("One SMS message with every attempt", returns=schemas.Message)
@endpoint(admin=True)
def get_message(conn, caller, message_id):
    return outbox.get_message(conn, caller.organization_id, message_id)


@bp.post("/retry")
@operation("Retry all: queue again, in one statement, every message of the organization in `status` (failed by "
           "default; unknown ones may then arrive twice), last changed at or after `since`, of `kind`; answers how many",
           returns=schemas.Requeued,
           query=(Query("status", {"enum": list(outbox.RETRYABLE), "default": "failed"}, "Only messages in this state"),
                  Query("since", {"type": "string", "format": "date-time"}, "Only messages that failed at or after this"),
                  Query("kind", {"type": "string", "minLength": 1}, "Only this kind: receipt, flag, announcement, ...")))
@endpoint(admin=True)
def retry_messages(conn, caller):
    replay = replay_filter(request.args, ("failed", "unknown"))
    ids = outbox.requeue(conn, caller.organization_id, replay=replay,
                         reason=f"resent with retry all through the API by key {caller.key_id}")
    return {"requeued": len(ids)}


# `retry` is the replay verb of both outboxes (deliveries too); `resend` is its earlier name, kept for clients.
@bp.post("/<int:message_id>/retry")
@bp.post("/<int:message_id>/resend")
@operation("Queue an unknown or failed message again (an unknown one may then arrive twice; see docs/sms.md)",
           returns=schemas.Message, problems=("not-retryable",))
@endpoint(admin=True)
def retry_message(conn, caller, message_id):
    return outbox.retry_message(conn, caller.organization_id, message_id,
                                reason=f"resent through the API by key {caller.key_id}")

"""SMS messages of the caller's organization (admin): list by status and kind, one with its history, resend."""

from flask import Blueprint, request

from api.context import endpoint
from fieldpipe import paging
from fieldpipe.sms import outbox

bp = Blueprint("messages", __name__, url_prefix="/api/v1/messages")


@bp.get("")
@endpoint(admin=True)
def list_messages(conn, caller):
    return outbox.list_messages(conn, caller.organization_id, paging.from_query(request.args, outbox.MESSAGES),
                                status=request.args.get("status"), kind=request.args.get("kind"))


@bp.get("/<int:message_id>")
@endpoint(admin=True)
def get_message(conn, caller, message_id):
    return outbox.get_message(conn, caller.organization_id, message_id)


@bp.post("/<int:message_id>/resend")
@endpoint(admin=True)
def resend_message(conn, caller, message_id):
    return outbox.resend(conn, caller.organization_id, message_id, reason=f"resent through the API by key {caller.key_id}")

"""Operators' notices (failures, backlogs, the daily digest) of the caller's organization, and who gets them
by mail. Admin only. Webhooks subscribe to them as events `pipeline.failed`, `backlog.exceeded`,
`failures.digest` (POST /api/v1/webhooks)."""

from flask import Blueprint, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import operation
from fieldpipe import paging
from fieldpipe.operations import notices

bp = Blueprint("notices", __name__, url_prefix="/api/v1/notices")


@bp.get("")
@operation("The organization's notices, newest first: each incident once, with its mail's state",
           listing=schemas.Notice)
@endpoint(admin=True)
def list_notices(conn, caller):
    return notices.list_notices(conn, caller.organization_id, paging.from_query(request.args, notices.NOTICES))


@bp.get("/recipients")
@operation("Who gets the organization's notices by mail", returns=schemas.NoticeRecipients)
@endpoint(admin=True)
def get_recipients(conn, caller):
    return notices.get_recipients(conn, caller.organization_id)


@bp.put("/recipients")
@operation("Set who gets the organization's notices by mail (an empty list: no one)",
           body=schemas.NoticeRecipients, returns=schemas.NoticeRecipients,
           examples={"two addresses": examples.NOTICE_RECIPIENTS})
@endpoint(admin=True)
def set_recipients(conn, caller):
    return notices.set_recipients(conn, caller.organization_id, json_body())

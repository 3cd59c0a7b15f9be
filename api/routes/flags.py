"""Flags raised by the form's business rules (written by the validate_responses DAG)."""

from flask import Blueprint, request

from api import schemas
from api.context import endpoint
from api.spec import Query, operation
from fieldpipe import flags, paging
from fieldpipe.forms import get_form_row

bp = Blueprint("flags", __name__, url_prefix="/api/v1/forms/<slug>/flags")


@bp.get("")
@operation("Flags the form's business rules raised (docs/rules.md), oldest first", listing=schemas.Flag,
           query=(Query("status", {"enum": list(flags.FLAG_STATUSES), "default": "open"}, "Which flags"),))
@endpoint()
def list_flags(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    return flags.list_flags(conn, form, paging.from_query(request.args, flags.FLAGS),
                            status=request.args.get("status", "open"))

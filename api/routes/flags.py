"""Flags raised by the form's business rules (written by the validate_responses DAG)."""

from flask import Blueprint, request

from api.context import endpoint
from fieldpipe import flags
from fieldpipe.forms import get_form_row
from fieldpipe.problems import FieldError, invalid

bp = Blueprint("flags", __name__, url_prefix="/api/v1/forms/<slug>/flags")


@bp.get("")
@endpoint()
def list_flags(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    try:
        limit = int(request.args.get("limit", 100))
    except ValueError:
        raise invalid([FieldError("limit", "type", "must be an integer")]) from None
    return flags.list_flags(conn, form, status=request.args.get("status", "open"), limit=limit,
                            after=request.args.get("cursor"))

"""Downloads of a form's responses: `export.csv` and `export.xlsx`, filtered as the listing is, masked by role.

Admin keys may see personal data and get it unmasked unless they ask for `?masked=true`; every other key
gets masked values and is refused `?masked=false`.
"""

from flask import Blueprint, Response, current_app, request

from api import schemas
from api.context import endpoint
from api.spec import Query, operation
from fieldpipe import responses
from fieldpipe.forms import get_form_row
from fieldpipe.problems import FieldError, Problem, invalid
from fieldpipe.reporting import downloads

bp = Blueprint("exports", __name__, url_prefix="/api/v1/forms/<slug>")
EXPORT_QUERY = (Query("masked", {"enum": ["true", "false"]},
                      "Admin keys: true to mask personal data (other keys always get it masked)"),
                Query("since", {"type": "string", "format": "date-time"}, "As in the responses listing"),
                Query("answer.*", schemas.ANSWER_FILTER, "As in the responses listing"),
                Query("q", {"type": "string"}, "As in the responses listing"))
EXPORT_RESPONSES = {"304": {"description": "Not modified: the If-None-Match ETag still matches"}}


def _masked(caller) -> bool:
    value = request.args.get("masked")
    if value not in (None, "true", "false"):
        raise invalid([FieldError("masked", "enum", "must be true or false")])
    if value == "false" and not caller.is_admin:
        raise Problem("forbidden", "only admin keys may download personal data unmasked")
    return value == "true" or not caller.is_admin


def _download(conn, caller, slug: str, fmt: str, body) -> Response:
    """304 while the export's ETag matches If-None-Match; otherwise `body(form, where, masked, headers)`."""
    form = get_form_row(conn, caller.organization_id, slug)
    masked = _masked(caller)
    errors: list[FieldError] = []
    where = responses.response_filters(
        form, since=request.args.get("since"), q=request.args.get("q"), errors=errors,
        answer_filters={k[len("answer."):]: v for k, v in request.args.items() if k.startswith("answer.")})
    if errors:
        raise invalid(errors)
    tag = downloads.etag(conn, form, where, masked=masked, fmt=fmt)
    headers = {"ETag": tag, "Cache-Control": "private, no-cache",
               "Content-Disposition": f'attachment; filename="{slug}.{fmt}"'}
    if request.if_none_match.contains_weak(tag.strip('"')):
        return Response(status=304, headers=headers)
    return body(form, where, masked, headers)


@bp.get("/export.csv")
@operation("The responses as CSV, filtered as the listing is, masked by role", produces="text/csv",
           query=EXPORT_QUERY, extra_responses=EXPORT_RESPONSES,
           headers={"ETag": "The export's version"})
@endpoint()
def export_csv(conn, caller, slug):
    def body(form, where, masked, headers):
        pool = current_app.extensions["fieldpipe_pool"]
        # The request's connection goes back to the pool when this view returns; the body reads with its own.
        stream_conn = pool.getconn()
        try:
            media_type, chunks = downloads.csv_chunks(stream_conn, form, where, masked=masked)
        except BaseException:
            pool.putconn(stream_conn)
            raise
        if media_type != "text/csv":
            headers["Content-Disposition"] = f'attachment; filename="{slug}.zip"'

        def stream():
            try:
                yield from chunks
            finally:
                pool.putconn(stream_conn)

        return Response(stream(), mimetype=media_type, headers=headers)

    return _download(conn, caller, slug, "csv", body)


@bp.get("/export.xlsx")
@operation("The responses as an XLSX workbook, filtered as the listing is, masked by role",
           produces="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", query=EXPORT_QUERY,
           extra_responses=EXPORT_RESPONSES, headers={"ETag": "The export's version"})
@endpoint()
def export_xlsx(conn, caller, slug):
    return _download(conn, caller, slug, "xlsx", lambda form, where, masked, headers: Response(
        downloads.xlsx_chunks(conn, form, where, masked=masked), mimetype=downloads.XLSX_TYPE, headers=headers))

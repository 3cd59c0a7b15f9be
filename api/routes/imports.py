"""Imports: upload a CSV or XLSX file of responses (run by the import_responses DAG), follow it, get a template."""

import re
from pathlib import PurePosixPath

from flask import Blueprint, Response, request
from werkzeug.utils import secure_filename

from api import schemas
from api.context import endpoint
from api.spec import Query, operation
from fieldpipe import objectstore, paging
from fieldpipe.config import Settings
from fieldpipe.forms import get_form_row
from fieldpipe.imports import jobs, template
from fieldpipe.problems import FieldError, Problem, invalid

bp = Blueprint("imports", __name__, url_prefix="/api/v1/forms/<slug>/imports")


@bp.post("")
@operation("Upload a CSV or XLSX file of responses (multipart part `file`); the import_responses DAG imports it: "
           "202 with the import to follow", upload=schemas.IMPORT_UPLOAD,
           returns=schemas.Import, status=202, problems=("already-exists",), tag="imports")
@endpoint(admin=True)
def upload(conn, caller, slug):
    """Put the file where dropped files wait (`<org>/<form>/incoming/`) and queue its import: 202 with its id."""
    form = get_form_row(conn, caller.organization_id, slug)
    request.max_content_length = Settings.from_env().max_import_bytes
    if request.mimetype != "multipart/form-data":
        raise Problem("unsupported-media-type", f"send multipart/form-data with the part 'file', not {request.mimetype}")
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise invalid([FieldError("file", "required", "send the CSV or XLSX file as multipart form field 'file'")])
    file_name = _safe_name(upload.filename)
    key = jobs.incoming_key(caller.organization_slug, slug, file_name)
    store = objectstore.default_store()
    if store.head(key) is not None:
        raise Problem("already-exists", f"a file named {file_name!r} is waiting to be imported into {slug!r}; "
                                        "rename it or try again once that import has finished")
    store.put(key, upload.stream, content_type=upload.mimetype or None)
    job = jobs.register(conn, caller.organization_slug, form["slug"], file_name, key, "upload")
    body = jobs.report(conn, job["id"])
    return body, 202, {"Location": f"/api/v1/forms/{slug}/imports/{job['id']}"}


@bp.get("")
@operation("The form's imports, with their progress and outcome", listing=schemas.Import, tag="imports")
@endpoint()
def list_imports(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    return jobs.list_imports(conn, form, paging.from_query(request.args, jobs.IMPORTS))


@bp.get("/template")
@operation("A template file with the form's columns", produces="application/octet-stream",
           query=(Query("format", {"enum": ["csv", "xlsx"], "default": "csv"}, "File format"),), tag="imports")
@endpoint()
def get_template(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    fmt = request.args.get("format", "csv")
    if fmt not in template.FORMATS:
        raise invalid([FieldError("format", "enum", f"must be one of {', '.join(template.FORMATS)}")])
    content, mimetype = template.render(form["questions"], fmt)
    return Response(content, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{slug}-template.{fmt}"'})


@bp.get("/<import_id>")
@operation("One import: its state, counts and the rows it refused", returns=schemas.Import, tag="imports")
@endpoint()
def get_import(conn, caller, slug, import_id):
    form = get_form_row(conn, caller.organization_id, slug)
    return jobs.get_import(conn, form, import_id)


def _safe_name(file_name: str) -> str:
    """A key-safe name that keeps the extension, which says how the file is read: `डेटा.csv` is `upload.csv`."""
    path = PurePosixPath(file_name.replace("\\", "/"))
    suffix = path.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,8}", path.suffix.lower()) else ""
    return f"{secure_filename(path.stem) or 'upload'}{suffix}"

"""OpenRosa for ODK Collect, KoboCollect and Enketo: one server URL per organization, `<base>/openrosa/<org>`.

Collect appends `/formList` and `/submission`. Authentication is HTTP Basic: the password is an API key of
that organization (collector or admin), the username is free and names the device in `collector.id`.
Every answer, errors included, is XML with the OpenRosa headers; errors are an `OpenRosaResponse` whose
message `nature` is the problem's stable slug.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, request, url_for
from werkzeug.exceptions import HTTPException

from api import schemas
from api.context import _cached_caller
from api.errors import HTTP_TO_PROBLEM
from api.metrics import SUBMISSION_OUTCOMES, count_submissions
from api.spec import Query, operation
from fieldpipe import openrosa
from fieldpipe.config import Settings
from fieldpipe.forms import CURRENT_FORMS
from fieldpipe.problems import Problem

bp = Blueprint("openrosa", __name__, url_prefix="/openrosa/<org>")
RESPONSE_NS = "http://openrosa.org/http/response"
XFORMS_LIST_NS = "http://openrosa.org/xforms/xformsList"
XML_TYPE = "text/xml; charset=utf-8"
OPENROSA_PROBLEMS = ("unauthenticated", "forbidden")


def _max_bytes() -> int:
    return current_app.config["MAX_CONTENT_LENGTH"]


def _xml(body: str, status: int = 200, headers: dict | None = None) -> Response:
    response = Response("<?xml version='1.0' encoding='UTF-8' ?>\n" + body, status=status, content_type=XML_TYPE)
    response.headers["X-OpenRosa-Version"] = "1.0"
    response.headers["X-OpenRosa-Accept-Content-Length"] = str(_max_bytes())
    response.headers.update(headers or {})
    return response


def envelope(message: str, status: int, nature: str, headers: dict | None = None) -> Response:
    return _xml(f'<OpenRosaResponse xmlns="{RESPONSE_NS}"><message nature="{escape(nature)}">'
                f"{escape(message)}</message></OpenRosaResponse>", status, headers)


@bp.errorhandler(Problem)
def _problem(problem: Problem):
    message = problem.detail or problem.type.title
    if problem.errors:
        message += ": " + "; ".join(f"{e.field} {e.message}" for e in problem.errors)
    headers = {"WWW-Authenticate": 'Basic realm="fieldpipe", charset="UTF-8"'} if problem.status == 401 else None
    return envelope(message, problem.status, problem.slug, headers)


@bp.errorhandler(HTTPException)
def _http(exc: HTTPException):
    slug = HTTP_TO_PROBLEM.get(exc.code or 500, "bad-request")
    if exc.code == 413:
        return _problem(Problem(slug, f"the post is larger than {_max_bytes()} bytes; split its files across posts"))
    return _problem(Problem(slug, exc.description if exc.code != 404 else None))


def _caller(conn, org: str):
    """The organization's key in the Basic password; 401 (with a challenge Collect answers) otherwise."""
    settings = Settings.from_env()
    if settings.production and not (request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"):
        raise Problem("forbidden", "OpenRosa needs HTTPS: the API key travels in every request")
    auth = request.authorization
    if auth is None or auth.type != "basic" or not auth.password:
        raise Problem("unauthenticated", "sign in with any user name and an API key of this organization as password")
    caller = _cached_caller(conn, auth.password)
    if caller is None or caller.organization_slug != org:
        raise Problem("unauthenticated", "the API key is not valid for this organization")
    return caller, (auth.username or "").strip() or "openrosa"


def _connection():
    return current_app.extensions["fieldpipe_pool"].connection()


@bp.get("/formList")
@operation("OpenRosa form list: the organization's forms that have an XForm", produces="text/xml",
           protocol="openrosa", problems=OPENROSA_PROBLEMS, tag="openrosa",
           query=(Query("formID", {"type": "string"}, "Only this form"),))
def form_list(org: str):
    with _connection() as conn:
        caller, _ = _caller(conn, org)
        wanted = request.args.get("formID")
        rows = conn.execute(
            f"""SELECT f.title, f.xform_id, v.xform_version, md5(v.xform) AS hash,
                      EXISTS (SELECT 1 FROM form_media m WHERE m.form_id = f.id) AS has_media FROM {CURRENT_FORMS}
                WHERE f.organization_id = %s AND f.xform_id IS NOT NULL AND (%s::text IS NULL OR f.xform_id = %s)
                ORDER BY f.slug""",
            (caller.organization_id, wanted, wanted),
        ).fetchall()
    items = "".join(
        f"<xform><formID>{escape(r['xform_id'])}</formID><name>{escape(r['title'])}</name>"
        f"<version>{escape(r['xform_version'] or '')}</version><hash>md5:{r['hash']}</hash>"
        f"<downloadUrl>{escape(url_for('openrosa.form_download', org=org, xform_id=r['xform_id'], _external=True))}"
        f"</downloadUrl>{_manifest_url(org, r)}</xform>"
        for r in rows
    )
    return _xml(f'<xforms xmlns="{XFORMS_LIST_NS}">{items}</xforms>')


def _manifest_url(org: str, row: dict) -> str:
    if not row["has_media"]:
        return ""
    url = url_for("openrosa.manifest", org=org, xform_id=row["xform_id"], _external=True)
    return f"<manifestUrl>{escape(url)}</manifestUrl>"


def _form(conn, caller, xform_id: str) -> dict:
    row = conn.execute("SELECT * FROM forms WHERE organization_id = %s AND xform_id = %s",
                       (caller.organization_id, xform_id)).fetchone()
    if row is None:
        raise Problem("not-found", f"form {xform_id!r} was not found")
    return row


@bp.get("/forms/<xform_id>/manifest")
@operation("OpenRosa manifest: the files the form shows (images, CSV choices)", produces="text/xml",
           protocol="openrosa", problems=OPENROSA_PROBLEMS + ("not-found",), tag="openrosa")
def manifest(org: str, xform_id: str):
    with _connection() as conn:
        caller, _ = _caller(conn, org)
        media = openrosa.form_media(conn, _form(conn, caller, xform_id)["id"])
    files = "".join(
        f"<mediaFile><filename>{escape(m['name'])}</filename><hash>md5:{m['md5']}</hash><downloadUrl>"
        f"{escape(url_for('openrosa.media', org=org, xform_id=xform_id, name=m['name'], _external=True))}"
        f"</downloadUrl></mediaFile>"
        for m in media
    )
    return _xml(f'<manifest xmlns="http://openrosa.org/xforms/xformsManifest">{files}</manifest>')


@bp.get("/forms/<xform_id>/media/<name>")
@operation("One of the form's media files", produces="application/octet-stream", protocol="openrosa",
           problems=OPENROSA_PROBLEMS + ("not-found",), tag="openrosa")
def media(org: str, xform_id: str, name: str):
    with _connection() as conn:
        caller, _ = _caller(conn, org)
        found = next((m for m in openrosa.form_media(conn, _form(conn, caller, xform_id)["id"]) if m["name"] == name), None)
    if found is None:
        raise Problem("not-found", f"media file {name!r} was not found")
    return Response(openrosa.stream(found["object_key"]), content_type=found["content_type"],
                    headers={"Content-Length": str(found["size"]), "X-OpenRosa-Version": "1.0"})


@bp.get("/forms/<xform_id>/form.xml")
@operation("OpenRosa form download: the XForm of the current version", produces="text/xml",
           protocol="openrosa", problems=OPENROSA_PROBLEMS + ("not-found",), tag="openrosa")
def form_download(org: str, xform_id: str):
    with _connection() as conn:
        caller, _ = _caller(conn, org)
        row = conn.execute(
            f"""SELECT v.xform FROM {CURRENT_FORMS}
                WHERE f.organization_id = %s AND f.xform_id = %s""",
            (caller.organization_id, xform_id),
        ).fetchone()
    if row is None:
        raise Problem("not-found", f"form {xform_id!r} was not found")
    response = Response(row["xform"], content_type=XML_TYPE)
    response.headers["X-OpenRosa-Version"] = "1.0"
    return response


@bp.route("/submission", methods=["HEAD", "POST"])
@operation("OpenRosa submission: multipart/form-data with xml_submission_file and its attachments; 201 with an "
           "OpenRosaResponse (a HEAD answers 204 for Collect's pre-flight)", produces="text/xml", status=201,
           upload=schemas.OPENROSA_SUBMISSION, protocol="openrosa", problems=OPENROSA_PROBLEMS + ("bad-request", "payload-too-large", "submission-conflict",
                                                        "validation-failed", "not-found"), tag="openrosa")
def submission(org: str):
    with _connection() as conn:
        caller, device = _caller(conn, org)
        if request.method == "HEAD":
            return _xml("", 204)
        xml_part = request.files.get("xml_submission_file")
        if xml_part is None:
            raise Problem("bad-request", "a submission is multipart/form-data with the part xml_submission_file")
        uploads = [openrosa.Upload(part.filename or name, part.mimetype or None, part.read())
                   for name, part in request.files.items(multi=True) if name != "xml_submission_file"]
        receipt = openrosa.submit(conn, caller.organization_id, xml_part.read(), uploads, device, _max_bytes())
    if receipt.status in SUBMISSION_OUTCOMES:
        count_submissions([receipt.status])
    message = {"created": "Form received.", "duplicate": "Form already received.", "edited": "Edit received."}[receipt.status]
    if receipt.files_missing:
        message += f" Waiting for {len(receipt.files_missing)} file(s): {', '.join(receipt.files_missing)}."
    return envelope(message, 201, "submit_success",
                    {"Location": f"/api/v1/forms/{receipt.form_slug}/responses/{receipt.submission_id}"})

"""Responses: post one or a batch (idempotent by submission id), read, search, edit as a new revision."""

from urllib.parse import quote

from flask import Blueprint, Response, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.metrics import count_submissions
from api.spec import Query, operation
from fieldpipe import flags, openrosa, paging, responses
from fieldpipe.forms import get_form_row
from fieldpipe.problems import FieldError, Problem, invalid
from fieldpipe.rules import warnings_for
from fieldpipe.tasks.runner import after_submission

bp = Blueprint("responses", __name__, url_prefix="/api/v1/forms/<slug>/responses")


@bp.post("")
@operation("Post one submission: 201 when new, 200 when the same submission was already received (a retry), "
           "409 when its id was used for different answers. A new submission is stored first; then the form's sync "
           "tasks run within a time budget and `tasks` says what each gave or that it did not run", body=schemas.Submission, returns=schemas.Response,
           status=201, problems=("submission-conflict",), examples={"water point": examples.SUBMISSION},
           extra_responses={"200": {"description": "Already received (a retry): the stored response", "content": {
               "application/json": {"schema": {"$ref": "#/components/schemas/Response"}}}}})
@endpoint()
def post_response(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    outcome = responses.ingest(conn, form, [json_body()])[0]
    count_submissions([outcome.status])
    if outcome.status == "invalid":
        raise invalid(outcome.errors)
    if outcome.status == "conflict":
        raise Problem("submission-conflict",
                      f"submission {outcome.submission_id} was already received with different answers; "
                      "edit it with PATCH instead")
    location = f"/api/v1/forms/{slug}/responses/{outcome.submission_id}"
    status = 201 if outcome.status == "created" else 200
    body = {**outcome.record, "warnings": warnings_for(conn, form, [outcome.record["answers"]])[0]}
    if outcome.status == "created":
        conn.commit()  # stored, whatever the sync tasks do next
        sync = after_submission(conn, form, outcome.record)
        if sync is not None:
            body["tasks"] = sync
    return body, status, {"Location": location}


@bp.post("/batch")
@operation(f"Post up to {responses.MAX_BATCH} submissions; each is judged on its own (created, duplicate, "
           "conflict or invalid with its errors)", body=schemas.Batch, returns=schemas.BatchResult,
           examples={"two water points": examples.BATCH})
@endpoint()
def post_batch(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    body = json_body()
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise invalid([FieldError("items", "required", "must be a non-empty list of submissions")])
    if len(items) > responses.MAX_BATCH:
        raise invalid([FieldError("items", "too_many", f"at most {responses.MAX_BATCH} submissions per batch")])
    outcomes = responses.ingest(conn, form, items)
    count_submissions([o.status for o in outcomes])
    # Warnings in the order of the stored outcomes, all from one look-up of the form's rules.
    warnings = iter(warnings_for(conn, form, [o.record["answers"] for o in outcomes if o.record is not None]))
    results = []
    summary = {"created": 0, "duplicate": 0, "conflict": 0, "invalid": 0}
    for index, outcome in enumerate(outcomes):
        summary[outcome.status] += 1
        result = {"index": index, "submission_id": outcome.submission_id, "status": outcome.status}
        if outcome.errors:
            result["errors"] = [e.as_dict() for e in outcome.errors]
        if outcome.record is not None:
            result["warnings"] = next(warnings)
        results.append(result)
    return {"summary": summary, "results": results}


@bp.get("")
@operation("Page through responses in the order received; filter by time, choice answers and words",
           listing=schemas.Response,
           query=(Query("since", {"type": "string", "format": "date-time"},
                        "Only responses received at or after this ISO 8601 time (with its zone)"),
                  Query("answer.*", schemas.ANSWER_FILTER,
                        "answer.<key>=<value>: equality on a choice or boolean question, e.g. answer.source=well"),
                  Query("q", {"type": "string"}, "Words that must all appear in the text answers")))
@endpoint()
def list_responses(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    args = request.args
    filters = {k[len("answer."):]: v for k, v in args.items() if k.startswith("answer.")}
    return responses.list_responses(conn, form, paging.from_query(args, responses.RESPONSES), since=args.get("since"),
                                    answer_filters=filters, q=args.get("q"))


@bp.get("/<submission_id>")
@operation("Get a response with its open flags", returns=schemas.Response)
@endpoint()
def get_response(conn, caller, slug, submission_id):
    form = get_form_row(conn, caller.organization_id, slug)
    body = responses.get_response(conn, form, submission_id)
    return {**body, "flags": flags.open_flags(conn, form, submission_id)}


@bp.patch("/<submission_id>")
@operation("Edit a response: a new revision (earlier ones are kept); members left out keep their values",
           body=schemas.ResponsePatch, returns=schemas.Response, examples={"correct a count": examples.RESPONSE_EDIT})
@endpoint()
def edit_response(conn, caller, slug, submission_id):
    form = get_form_row(conn, caller.organization_id, slug)
    record, _ = responses.edit_response(conn, form, submission_id, json_body())
    return {**record, "warnings": warnings_for(conn, form, [record["answers"]])[0]}


@bp.get("/<submission_id>/revisions")
@operation("Every revision of a response, oldest first", listing=schemas.Revision)
@endpoint()
def list_revisions(conn, caller, slug, submission_id):
    form = get_form_row(conn, caller.organization_id, slug)
    return responses.list_revisions(conn, form, submission_id, paging.from_query(request.args, responses.REVISIONS))


@bp.get("/<submission_id>/attachments")
@operation("The files that came with a response (OpenRosa attachments), by name", listing=schemas.Attachment)
@endpoint()
def list_attachments(conn, caller, slug, submission_id):
    form = get_form_row(conn, caller.organization_id, slug)
    row = responses.lookup(conn, form, submission_id)
    return openrosa.list_attachments(conn, row["id"], paging.from_query(request.args, openrosa.ATTACHMENTS))


@bp.get("/<submission_id>/attachments/<name>")
@operation("One attachment's file, streamed behind the API key", produces="application/octet-stream",
           headers={"ETag": "The file's SHA-256"})
@endpoint()
def get_attachment(conn, caller, slug, submission_id, name):
    """The file itself, streamed from object storage behind the API key (no public bucket URLs)."""
    form = get_form_row(conn, caller.organization_id, slug)
    row = openrosa.attachment_object(conn, responses.lookup(conn, form, submission_id)["id"], name)
    return Response(openrosa.stream(row["object_key"]), content_type=row["content_type"],
                    headers={"Content-Length": str(row["size"]), "ETag": f'"{row["sha256"]}"',
                             "Content-Disposition": "attachment; filename*=UTF-8''" + quote(name)})

"""Assessments: definitions, the per-school listing with an ETag, submissions (student marks, class results,
exam answers; idempotent per submission id) and the daily summaries."""

from flask import Blueprint, Response, request

from api.context import endpoint, json_body
from fieldpipe import paging
from fieldpipe.assessments import aggregate, definitions, submissions

bp = Blueprint("assessments", __name__, url_prefix="/api/v1/assessments")


@bp.post("")
@endpoint(admin=True)
def create_assessment(conn, caller):
    assessment = definitions.create_assessment(conn, caller.organization_id, json_body())
    return assessment, 201, {"Location": f"/api/v1/assessments/{assessment['id']}"}


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@bp.get("")
@endpoint()
def list_assessments(conn, caller):
    """Open assessments for ?school=<udise> (all of the organization's without it); 304 when unchanged."""
    listing, etag = definitions.open_assessments(conn, caller.organization_id, request.args.get("school"),
                                                 paging.from_query(request.args, definitions.ASSESSMENTS))
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=headers)
    return listing, 200, headers


@bp.get("/<assessment_id>")
@endpoint()
def get_assessment(conn, caller, assessment_id):
    return definitions.get_assessment(conn, caller.organization_id, assessment_id,
                                      with_answer_keys=caller.is_admin)


@bp.patch("/<assessment_id>")
@endpoint(admin=True)
def update_assessment(conn, caller, assessment_id):
    return definitions.update_assessment(conn, caller.organization_id, assessment_id, json_body())


def _receipt(result):
    receipt, created = result
    return receipt, 201 if created else 200


@bp.post("/<assessment_id>/submissions/student")
@endpoint()
def submit_student_marks(conn, caller, assessment_id):
    return _receipt(submissions.submit_student_marks(conn, caller.organization_id, assessment_id, json_body()))


@bp.post("/<assessment_id>/submissions/class")
@endpoint()
def submit_class_results(conn, caller, assessment_id):
    return _receipt(submissions.submit_class_results(conn, caller.organization_id, assessment_id, json_body()))


@bp.post("/<assessment_id>/answers")
@endpoint()
def submit_exam_answers(conn, caller, assessment_id):
    return _receipt(submissions.submit_exam_answers(conn, caller.organization_id, assessment_id, json_body()))


@bp.get("/<assessment_id>/summary")
@endpoint()
def get_summary(conn, caller, assessment_id):
    return aggregate.read_summary(conn, caller.organization_id, assessment_id, request.args.get("level", "class"),
                                  request.args.get("date"))

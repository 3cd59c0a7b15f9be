"""Assessments: definitions, the per-school listing with an ETag, submissions (student marks, class results,
exam answers; idempotent per submission id) and the daily summaries."""

from flask import Blueprint, Response, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import domains, paging
from fieldpipe.assessments import aggregate, definitions, exams, export, readback, results, submissions

bp = Blueprint("assessments", __name__, url_prefix="/api/v1/assessments")

SUPPORTED = "; ".join(f"{c['type']}/{c['evaluation']}/{c['outcome']}" for c in definitions.SUPPORTED)
RECEIPT_OK = {"200": {"description": "A repeat of the same submission (same id, same content): the first receipt",
                      "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SubmissionReceipt"}}}}}


@bp.post("")
@operation("Create an assessment", description=f"Supported type/evaluation/outcome combinations: {SUPPORTED}. "
           "Others are a 422 whose `supported` member lists them.", body=schemas.AssessmentInput,
           returns=schemas.Assessment, status=201, examples={"marks per student": examples.ASSESSMENT, "class record": examples.CLASS_ASSESSMENT,
                     "exam": examples.EXAM},
           headers={"Location": "The new assessment's URL"})
@endpoint(admin=True)
def create_assessment(conn, caller):
    assessment = definitions.create_assessment(conn, caller.organization_id, json_body())
    return assessment, 201, {"Location": f"/api/v1/assessments/{assessment['id']}"}


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _cached(listing: dict, etag: str):
    """The listing with its ETag, or 304 when the client's If-None-Match names that tag."""
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("If-None-Match"), etag):
        return Response(status=304, headers=headers)
    return listing, 200, headers


NOT_MODIFIED = {"304": {"description": "Not modified: the If-None-Match ETag still matches"}}
CLASS_QUERY = Query("class_id", {"type": "integer", "minimum": 1, "maximum": domains.ROW_ID_MAX},
                    "One class of the assessment (default: all)")


@bp.get("")
@operation("Assessments open for a school's classes (all of the organization's without `school`), with each "
           "class's submission count", description="Send the page's ETag back as If-None-Match: 304 while "
           "nothing on the page changed.", listing=schemas.Assessment,
           query=(Query("school", {"type": "string", "pattern": "^[0-9]{11}$"}, "A school's UDISE code"),),
           headers={"ETag": "The page's version, for If-None-Match"}, problems=("not-found",),
           extra_responses=NOT_MODIFIED)
@endpoint()
def list_assessments(conn, caller):
    return _cached(*definitions.open_assessments(conn, caller.organization_id, request.args.get("school"),
                                                 paging.from_query(request.args, definitions.ASSESSMENTS)))


@bp.get("/<assessment_id>")
@operation("Get an assessment (answer keys for admin keys only)", returns=schemas.Assessment)
@endpoint()
def get_assessment(conn, caller, assessment_id):
    return definitions.get_assessment(conn, caller.organization_id, assessment_id,
                                      with_answer_keys=caller.is_admin)


@bp.patch("/<assessment_id>")
@operation("Change title, deadline, class_ids or sheet; members left out keep their values",
           body=schemas.AssessmentPatch, returns=schemas.Assessment,
           examples={"rename and set a deadline": examples.ASSESSMENT_PATCH})
@endpoint(admin=True)
def update_assessment(conn, caller, assessment_id):
    return definitions.update_assessment(conn, caller.organization_id, assessment_id, json_body())


def _receipt(result):
    receipt, created = result
    return receipt, 201 if created else 200


@bp.post("/<assessment_id>/submissions/student")
@operation("Marks (or grades) per student per item for one class, with is_present", description="201 when new, "
           "200 for a repeat of the same submission_id and content, 409 for different content, 422 listing every "
           "bad entry.", body=schemas.StudentSubmission, returns=schemas.SubmissionReceipt, status=201,
           problems=("submission-conflict",), extra_responses=RECEIPT_OK, examples={"marks": examples.MARKS})
@endpoint()
def submit_student_marks(conn, caller, assessment_id):
    return _receipt(submissions.submit_student_marks(conn, caller.organization_id, assessment_id, json_body()))


@bp.post("/<assessment_id>/submissions/class")
@operation("Students present and cleared per item for one class (class-level assessments)",
           body=schemas.ClassSubmission, returns=schemas.SubmissionReceipt, status=201,
           problems=("submission-conflict",), extra_responses=RECEIPT_OK, examples={"reading": examples.CLASS_RESULTS})
@endpoint()
def submit_class_results(conn, caller, assessment_id):
    return _receipt(submissions.submit_class_results(conn, caller.organization_id, assessment_id, json_body()))


@bp.post("/<assessment_id>/answers")
@operation("A batch of exam answers for one class, stored as they come and graded by the aggregate_assessments DAG",
           body=schemas.ExamAnswers, returns=schemas.SubmissionReceipt, status=201,
           problems=("submission-conflict",), extra_responses=RECEIPT_OK, examples={"quiz": examples.EXAM_ANSWERS})
@endpoint()
def submit_exam_answers(conn, caller, assessment_id):
    return _receipt(submissions.submit_exam_answers(conn, caller.organization_id, assessment_id, json_body()))


@bp.get("/<assessment_id>/summary")
@operation("The daily summary per item: students assessed, present, passing, mean and median marks, grades",
           returns=schemas.Summary,
           query=(Query("level", {"enum": list(aggregate.LEVELS), "default": "class"}, "Roll-up level"),
                  Query("date", {"type": "string", "format": "date"}, "YYYY-MM-DD; default the latest computed day")))
@endpoint()
def get_summary(conn, caller, assessment_id):
    return aggregate.read_summary(conn, caller.organization_id, assessment_id, request.args.get("level", "class"),
                                  request.args.get("date"))


READ_BACK = dict(query=(CLASS_QUERY,), headers={"ETag": "The page's version, for If-None-Match"},
                 extra_responses=NOT_MODIFIED)


def _read_back(read, keyset: paging.Keyset, conn, caller, assessment_id):
    """A read-back page of one class (every class without `class_id`), or 304 while it is unchanged."""
    return _cached(*read(conn, caller.organization_id, assessment_id, paging.from_query(request.args, keyset),
                         results.parse_class_id(request.args.get("class_id"))))


@bp.get("/<assessment_id>/submissions/student")
@operation("Read back the current marks (or grades) per student, as the app last sent them",
           description="One item per student of the class (of every class without `class_id`) who has marks. "
           "Send the page's ETag back as If-None-Match: 304 while nothing on the page changed.",
           listing=schemas.StudentMarksReadBack, **READ_BACK)
@endpoint()
def read_student_marks(conn, caller, assessment_id):
    return _read_back(readback.student_submissions, readback.STUDENT_SUBMISSIONS, conn, caller, assessment_id)


@bp.get("/<assessment_id>/submissions/class")
@operation("Read back the current students present and cleared per class and item, as the app last sent them",
           description="Send the page's ETag back as If-None-Match: 304 while nothing on the page changed.",
           listing=schemas.ClassResultReadBack, **READ_BACK)
@endpoint()
def read_class_results(conn, caller, assessment_id):
    return _read_back(readback.class_submissions, readback.CLASS_SUBMISSIONS, conn, caller, assessment_id)


@bp.get("/<assessment_id>/results")
@operation("Results per student: total marks, percentage, grade, passed and per-item marks; absent students listed",
           description="As of `as_of` (default now): only marks and answers received before it count, so results "
           "as of a past instant are reproduced exactly later. Exams count the graded latest answer per question.",
           listing=schemas.StudentResult,
           query=(CLASS_QUERY, Query("as_of", {"type": "string", "format": "date-time"},
                                     "ISO 8601 with an offset; default now")))
@endpoint()
def list_results(conn, caller, assessment_id):
    return results.list_results(conn, caller.organization_id, assessment_id,
                                paging.from_query(request.args, results.RESULTS),
                                results.parse_class_id(request.args.get("class_id")),
                                results.parse_as_of(request.args.get("as_of")))


@bp.post("/<assessment_id>/close")
@operation("Close an exam to new answers and grade it now", description="Answers already stored are graded in "
           "this request, so the results are readable when it answers; the Results tab follows within a minute "
           "(the export_results DAG). Closing a closed exam changes nothing. Answers sent afterwards are refused "
           "(422 `exam_closed`).", returns=schemas.ExamClosed)
@endpoint(admin=True)
def close_exam(conn, caller, assessment_id):
    return exams.close_exam(conn, caller.organization_id, assessment_id)


@bp.get("/<assessment_id>/results.csv")
@operation("The results as CSV, one row per student (the Results tab): class, roll number, name, status, a column "
           "per item, total, percentage, grade, passed", produces="text/csv",
           query=(Query("as_of", {"type": "string", "format": "date-time"}, "ISO 8601 with an offset; default now"),),
           headers={"ETag": "The file's version, for If-None-Match"}, extra_responses=NOT_MODIFIED)
@endpoint()
def results_csv(conn, caller, assessment_id):
    body, etag = export.results_csv(conn, caller.organization_id, assessment_id,
                                    results.parse_as_of(request.args.get("as_of")))
    return _cached(Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="assessment-{int(assessment_id)}-results.csv"'}), etag)

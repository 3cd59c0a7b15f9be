"""Students who sit exams themselves: PIN slips for a class (admin), sign-in for a token, and the student's own
open exams and answers (student token only)."""

from flask import Blueprint, current_app, request

from api import examples, schemas
from api.context import endpoint, json_body, student_endpoint
from api.spec import operation
from fieldpipe import paging
from fieldpipe.assessments import exams, signin

bp = Blueprint("exams", __name__, url_prefix="/api/v1")


@bp.post("/classes/<class_id>/student-signins")
@operation("Issue sign-in PINs to a class's students, for printing on slips", description="Each student gets a "
           "new 6-digit PIN (replacing any earlier one and ending a lockout) and a one-time sign-in code with its "
           "QR code, shown only in this answer. A student signs in with the class id, their roll number and the "
           "PIN, or once by scanning the QR code.", body=schemas.PinIssue,
           returns=schemas.PinSlips, status=201, examples={"the whole class": {}, "two students": {"student_ids": [1, 2]}})
@endpoint(admin=True)
def issue_pins(conn, caller, class_id):
    return signin.issue_pins(conn, caller.organization_id, class_id, json_body()), 201


@bp.post("/auth/student")
@operation("Sign a student in: class id, roll number and PIN (or the slip's QR code) for a short-lived token",
           description="No API key. A wrong PIN is 401; after repeated wrong PINs the student's sign-in is locked "
           "for a while (429, `locked_until`). The slip's one-time code works once (then 401) and not while the "
           "sign-in is locked.", body=schemas.StudentSignIn, returns=schemas.StudentToken,
           problems=("unauthenticated", "sign-in-locked"),
           examples={"slip": examples.STUDENT_SIGN_IN, "QR code": examples.STUDENT_SIGN_IN_CODE})
def student_sign_in():
    payload = json_body()
    with current_app.extensions["fieldpipe_pool"].connection() as conn:
        return signin.sign_in(conn, payload)


@bp.get("/students/<student_id>/exams")
@operation("The signed-in student's open exams, with their questions and the student's answers so far",
           listing=schemas.StudentExam)
@student_endpoint()
def open_exams(conn, student, student_id):
    return exams.open_exams(conn, student, student_id, paging.from_query(request.args, exams.OPEN_EXAMS))


@bp.post("/students/<student_id>/exams/<assessment_id>/answers")
@operation("One answer of the signed-in student", description="201 when stored, 200 for a retry with the same "
           "answer_id (409 if its question or choice differs). The latest answer per question counts. Refused "
           "with 422 after the exam closes (`exam_closed`), for a question not in the exam (`unknown_question`) "
           "or a choice not offered (`choice`); nothing is stored.", body=schemas.StudentAnswer,
           returns=schemas.AnswerReceipt, status=201, problems=("submission-conflict",),
           extra_responses={"200": {"description": "A retry of a stored answer: the first receipt", "content": {
               "application/json": {"schema": {"$ref": "#/components/schemas/AnswerReceipt"}}}}},
           examples={"an answer": examples.STUDENT_ANSWER})
@student_endpoint(autocommit=True)
def post_answer(conn, student, student_id, assessment_id):
    receipt, created = exams.post_answer(conn, student, student_id, assessment_id, json_body())
    return receipt, 201 if created else 200


@bp.get("/students/<student_id>/exams/<assessment_id>/answers")
@operation("The signed-in student's latest answer per question of one exam", returns=schemas.OwnAnswers)
@student_endpoint()
def own_answers(conn, student, student_id, assessment_id):
    return exams.own_answers(conn, student, student_id, assessment_id)

"""Schools (by UDISE code), classes, students (bulk import as JSON or CSV) and subjects."""

from flask import Blueprint, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.assessments import roster
from fieldpipe.problems import FieldError, Problem, invalid

bp = Blueprint("schools", __name__, url_prefix="/api/v1")


@bp.post("/schools")
@operation("Create a school", body=schemas.SchoolInput, returns=schemas.School, status=201,
           problems=("already-exists",), examples={"a school": examples.SCHOOL},
           headers={"Location": "The new school's URL"})
@endpoint(admin=True)
def create_school(conn, caller):
    school = roster.create_school(conn, caller.organization_id, json_body())
    return school, 201, {"Location": f"/api/v1/schools/{school['udise']}"}


@bp.get("/schools")
@operation("List the organization's schools, by UDISE code", listing=schemas.School)
@endpoint()
def list_schools(conn, caller):
    return roster.list_schools(conn, caller.organization_id, paging.from_query(request.args, roster.SCHOOLS))


@bp.get("/schools/<udise>")
@operation("Get a school", returns=schemas.School)
@endpoint()
def get_school(conn, caller, udise):
    return roster.school_body(roster.get_school_row(conn, caller.organization_id, udise))


@bp.post("/schools/<udise>/classes")
@operation("Create a class (grade 1-12, section)", body=schemas.ClassInput, returns=schemas.Class, status=201,
           problems=("already-exists",), examples={"grade 5 A": examples.CLASS})
@endpoint(admin=True)
def create_class(conn, caller, udise):
    return roster.create_class(conn, caller.organization_id, udise, json_body()), 201


@bp.get("/schools/<udise>/classes")
@operation("List a school's classes, by grade and section", listing=schemas.Class)
@endpoint()
def list_classes(conn, caller, udise):
    return roster.list_classes(conn, caller.organization_id, udise, paging.from_query(request.args, roster.CLASSES))


@bp.post("/classes/<class_id>/students")
@operation("Import students, all or nothing: JSON {students: [...]} or a text/csv body with the columns "
           "roll_number,name,parent_phone (and one guardian per row: guardian_name, guardian_relation, guardian_phone, "
           "guardian_language, guardian_opted_out). Existing roll numbers are updated (and re-enrolled)",
           body=schemas.StudentImport, text_body={"text/csv": schemas.STUDENTS_CSV},
           returns=schemas.StudentImportResult, examples={"two students": examples.STUDENTS},
           problems=("bad-request",))
@endpoint(admin=True)
def import_students(conn, caller, class_id):
    if request.mimetype == "text/csv":
        try:
            entries = roster.parse_students_csv(request.get_data(as_text=False).decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise Problem("bad-request", "the CSV must be UTF-8") from None
    else:
        body = json_body()
        entries = body.get("students") if isinstance(body, dict) else None
    return roster.import_students(conn, caller.organization_id, class_id, entries)


@bp.get("/classes/<class_id>/students")
@operation("List a class's students, by roll number", listing=schemas.Student,
           query=(Query("include_deleted", {"enum": ["true", "false"], "default": "false"},
                        "true to list those who left too"),))
@endpoint()
def list_students(conn, caller, class_id):
    include_deleted = request.args.get("include_deleted", "false")
    if include_deleted not in ("true", "false"):
        raise invalid([FieldError("include_deleted", "enum", "must be true or false")])
    return roster.list_students(conn, caller.organization_id, class_id,
                                paging.from_query(request.args, roster.STUDENTS), include_deleted == "true")


@bp.delete("/students/<student_id>")
@operation("Mark a student as having left; later marks for them are rejected", returns=schemas.Student)
@endpoint(admin=True)
def delete_student(conn, caller, student_id):
    return roster.delete_student(conn, caller.organization_id, student_id)


@bp.post("/subjects")
@operation("Create a subject", body=schemas.SubjectInput, returns=schemas.Subject, status=201,
           problems=("already-exists",), examples={"maths": examples.SUBJECT})
@endpoint(admin=True)
def create_subject(conn, caller):
    return roster.create_subject(conn, caller.organization_id, json_body()), 201


@bp.get("/subjects")
@operation("List the organization's subjects, by code", listing=schemas.Subject)
@endpoint()
def list_subjects(conn, caller):
    return roster.list_subjects(conn, caller.organization_id, paging.from_query(request.args, roster.SUBJECTS))

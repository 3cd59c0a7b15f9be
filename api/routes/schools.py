"""Schools (by UDISE code), classes, students (bulk import as JSON or CSV) and subjects."""

from flask import Blueprint, request

from api.context import endpoint, json_body
from fieldpipe import paging
from fieldpipe.assessments import roster
from fieldpipe.problems import Problem

bp = Blueprint("schools", __name__, url_prefix="/api/v1")


@bp.post("/schools")
@endpoint(admin=True)
def create_school(conn, caller):
    school = roster.create_school(conn, caller.organization_id, json_body())
    return school, 201, {"Location": f"/api/v1/schools/{school['udise']}"}


@bp.get("/schools")
@endpoint()
def list_schools(conn, caller):
    return roster.list_schools(conn, caller.organization_id, paging.from_query(request.args, roster.SCHOOLS))


@bp.get("/schools/<udise>")
@endpoint()
def get_school(conn, caller, udise):
    return roster.school_body(roster.get_school_row(conn, caller.organization_id, udise))


@bp.post("/schools/<udise>/classes")
@endpoint(admin=True)
def create_class(conn, caller, udise):
    return roster.create_class(conn, caller.organization_id, udise, json_body()), 201


@bp.get("/schools/<udise>/classes")
@endpoint()
def list_classes(conn, caller, udise):
    return roster.list_classes(conn, caller.organization_id, udise, paging.from_query(request.args, roster.CLASSES))


@bp.post("/classes/<class_id>/students")
@endpoint(admin=True)
def import_students(conn, caller, class_id):
    """A JSON body {"students": [...]} or a CSV (text/csv) with roll_number,name,parent_phone columns."""
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
@endpoint()
def list_students(conn, caller, class_id):
    include_deleted = request.args.get("include_deleted") == "true"
    return roster.list_students(conn, caller.organization_id, class_id,
                                paging.from_query(request.args, roster.STUDENTS), include_deleted)


@bp.delete("/students/<student_id>")
@endpoint(admin=True)
def delete_student(conn, caller, student_id):
    return roster.delete_student(conn, caller.organization_id, student_id)


@bp.post("/subjects")
@endpoint(admin=True)
def create_subject(conn, caller):
    return roster.create_subject(conn, caller.organization_id, json_body()), 201


@bp.get("/subjects")
@endpoint()
def list_subjects(conn, caller):
    return roster.list_subjects(conn, caller.organization_id, paging.from_query(request.args, roster.SUBJECTS))

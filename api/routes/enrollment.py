"""Enrollment, students' records, leaving with a school leaving certificate (SLC), verification, transfers
from other states, the organization's signing keys and the audit log (fieldpipe.enrollment)."""

from flask import Blueprint, Response, current_app, request

from api import schemas
from api.context import endpoint, json_body
from api.examples import ENROLLMENT
from api.spec import Query, operation
from fieldpipe import audit, paging
from fieldpipe.enrollment import records, signing

bp = Blueprint("enrollment", __name__)
API = "/api/v1"


def _absolute(body: dict) -> dict:
    """pdf_url as a full URL, so a client can download it as is."""
    return {**body, "pdf_url": request.host_url.rstrip("/") + body["pdf_url"]}


@bp.post(f"{API}/enrollments")
@operation("Enroll a student: new (409 duplicate-student with `existing_student`), a transfer within the state by "
           "`slc_qr_payload` (a certificate is used once), or from another state with `out_of_state` details (waits "
           "for review); docs/enrollment.md", body=schemas.EnrollmentInput, returns=schemas.Student, status=201,
           problems=("duplicate-student", "already-exists", "certificate-used", "certificate-invalid", "student-enrolled"),
           examples={"a new student": ENROLLMENT}, tag="enrollment")
@endpoint(admin=True)
def enroll(conn, caller):
    student = records.enroll(conn, caller.organization_id, caller.key_id, json_body())
    return student, 201, {"Location": f"{API}/students/{student['id']}"}


@bp.get(f"{API}/students/<student_id>")
@operation("A student with guardians, every enrollment period and certificates", returns=schemas.Student,
           tag="enrollment")
@endpoint()
def get_student(conn, caller, student_id):
    return records.get_student(conn, caller.organization_id, student_id)


@bp.post(f"{API}/students/<student_id>/leave")
@operation("End the student's enrollment on `date` and issue a signed school leaving certificate (PDF with a QR "
           "code): {student, slc}", body=schemas.LeaveInput, returns=schemas.LeaveResult, status=201,
           problems=("student-not-enrolled",), examples={"leaving": {"date": "2027-03-31", "reason": "family moved"}},
           tag="enrollment")
@endpoint(admin=True)
def leave(conn, caller, student_id):
    result = records.leave(conn, caller.organization_id, caller.key_id, student_id, json_body())
    return {**result, "slc": _absolute(result["slc"])}, 201


@bp.post(f"{API}/slc/verify")
@operation("Check a certificate's QR payload: {valid, reason, kid, certificate}", body=schemas.VerifyInput,
           returns=schemas.Verification, examples={"a payload": {"qr_payload": "FPSLC1...."}}, tag="enrollment")
@endpoint()
def verify(conn, caller):
    body = json_body()
    return records.verify(conn, body.get("qr_payload") if isinstance(body, dict) else None)


@bp.get(f"{API}/slc/<certificate_id>")
@operation("A certificate with its QR payload and status", returns=schemas.Certificate, tag="enrollment")
@endpoint()
def get_certificate(conn, caller, certificate_id):
    return _absolute(records.get_certificate(conn, caller.organization_id, certificate_id))


@bp.get(f"{API}/slc/<certificate_id>/pdf")
@operation("The certificate's PDF (English and Hindi)", produces="application/pdf", tag="enrollment")
@endpoint()
def certificate_pdf(conn, caller, certificate_id):
    pdf = records.certificate_pdf(conn, caller.organization_id, certificate_id)
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="slc-{certificate_id}.pdf"'})


@bp.post(f"{API}/slc/<certificate_id>/revoke")
@operation("Revoke a certificate issued in error: it no longer verifies", returns=schemas.Certificate,
           tag="enrollment")
@endpoint(admin=True)
def revoke_certificate(conn, caller, certificate_id):
    return _absolute(records.revoke_certificate(conn, caller.organization_id, caller.key_id, certificate_id))


@bp.get("/.well-known/fieldpipe-slc-keys")
@operation("Every organization's certificate keys as a JWK set, with their status (public, for offline checks)",
           returns=schemas.SigningKeySet, tag="enrollment")
def published_keys():
    """Every organization's certificate keys as a JWK set, with their status; public, for offline checks."""
    with current_app.extensions["fieldpipe_pool"].connection() as conn:
        keys = signing.published_keys(conn)
    return {"keys": keys}, 200, {"Cache-Control": "public, max-age=300"}


@bp.get(f"{API}/slc-keys")
@operation("The organization's certificate signing keys (public halves) and status", listing=schemas.SigningKey,
           tag="enrollment")
@endpoint(admin=True)
def list_keys(conn, caller):
    return signing.organization_keys(conn, caller.organization_id, paging.from_query(request.args, signing.KEYS))


@bp.post(f"{API}/slc-keys/rotate")
@operation("Make a new signing key; the old one is retired (its certificates still verify)",
           returns=schemas.SigningKey, status=201, tag="enrollment")
@endpoint(admin=True)
def rotate_key(conn, caller):
    return signing.rotate(conn, caller.organization_id, caller.key_id), 201


@bp.post(f"{API}/slc-keys/<kid>/revoke")
@operation("Revoke a signing key: every certificate it signed is refused from now on", returns=schemas.SigningKey,
           tag="enrollment")
@endpoint(admin=True)
def revoke_key(conn, caller, kid):
    return signing.revoke(conn, caller.organization_id, caller.key_id, kid)


@bp.get(f"{API}/transfers")
@operation("Transfers from other states and their review status", listing=schemas.Transfer,
           query=(Query("status", {"enum": ["pending", "accepted", "rejected"]}, "Only transfers in this state"),),
           tag="enrollment")
@endpoint(admin=True)
def list_transfers(conn, caller):
    return records.list_transfers(conn, caller.organization_id, paging.from_query(request.args, records.TRANSFERS),
                                  request.args.get("status"))


@bp.post(f"{API}/transfers/<transfer_id>/review")
@operation("Accept or reject a transfer from another state", body=schemas.ReviewInput, returns=schemas.Transfer,
           problems=("already-reviewed",), examples={"accept": {"decision": "accepted", "note": "documents checked"}},
           tag="enrollment")
@endpoint(admin=True)
def review_transfer(conn, caller, transfer_id):
    return records.review_transfer(conn, caller.organization_id, caller.key_id, transfer_id, json_body())


@bp.get(f"{API}/audit")
@operation("The audit log: who (which API key) enrolled, transferred, issued or revoked what",
           listing=schemas.AuditEntry, query=(Query("subject", {"type": "string"}, "e.g. student:12"),),
           tag="enrollment")
@endpoint(admin=True)
def audit_log(conn, caller):
    return audit.entries(conn, caller.organization_id, paging.from_query(request.args, audit.ENTRIES),
                         request.args.get("subject"))

"""Demo enrollment: a second demo school (UDISE 02010200201, class 5A) and one student's whole journey:
registered at the demo school, leaving with a certificate, enrolled at the second school by its QR payload.

`load_demo_schools` runs with the rest of the demo data; `load_demo_transfer` needs object storage, so
`make up` runs it once the local S3 server is up. Both are idempotent.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg

from fieldpipe.assessments import roster
from fieldpipe.dev.demo_assessments import DEMO_UDISE
from fieldpipe.enrollment import records
from fieldpipe.problems import Problem

log = logging.getLogger("fieldpipe.demo")

SECOND_UDISE = "02010200201"
DEMO_STUDENT = {"name": "Anjali Kaushal", "date_of_birth": "2015-06-14", "gender": "female",
                "guardians": [{"name": "Rajesh Kaushal", "relation": "father", "phone": "+919816000101"},
                              {"name": "सुनीता कौशल", "relation": "mother", "phone": "+919816000102"}],
                "admission_number": "M-2021-044", "admitted_on": "2021-04-01"}


def _class_id(conn: psycopg.Connection, organization_id: int, udise: str) -> int:
    return conn.execute(
        """SELECT c.id FROM classes c JOIN schools s ON s.id = c.school_id
            WHERE s.organization_id = %s AND s.udise = %s AND c.grade = 5 AND c.section = 'A'""",
        (organization_id, udise)).fetchone()["id"]


def load_demo_schools(conn: psycopg.Connection, organization_id: int) -> None:
    """The second demo school with a class 5A, for transfers."""
    try:
        with conn.transaction():
            roster.create_school(conn, organization_id, {"udise": SECOND_UDISE, "name": "GSSS Demo, Theog",
                                                "district": "Shimla", "block": "Theog"})
            roster.create_class(conn, organization_id, SECOND_UDISE, {"grade": 5, "section": "A"})
    except Problem as problem:
        if problem.slug != "already-exists":
            raise


def load_demo_transfer(conn: psycopg.Connection, organization_id: int) -> str:
    """Register the demo student, issue their certificate and transfer them; return the certificate id."""
    try:
        with conn.transaction():
            student = records.enroll(conn, organization_id, None, {**DEMO_STUDENT, "class_id": _class_id(conn, organization_id, DEMO_UDISE)})
    except Problem as problem:
        if problem.slug != "duplicate-student":
            raise
        student = records.get_student(conn, organization_id, problem.extra["existing_student"]["id"])
    if not student["certificates"]:
        certificate = records.leave(conn, organization_id, None, student["id"], {
            "reason": "Family moved to Theog / परिवार थियोग चला गया", "date": dt.date.today().isoformat()})["slc"]
        records.enroll(conn, organization_id, None, {"class_id": _class_id(conn, organization_id, SECOND_UDISE),
                                            "slc_qr_payload": certificate["qr_payload"]})
        student = records.get_student(conn, organization_id, student["id"])
    log.info("demo student %d: certificate %s, now in %s", student["id"], student["certificates"][0]["id"],
             student["school"])
    return student["certificates"][0]["id"]

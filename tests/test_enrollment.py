"""Enrollment with duplicate detection, leaving with a signed certificate (PDF and QR in object storage),
verification, transfers within the state (once) and from other states, key rotation and revocation, audit."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import uuid

import pytest
import segno
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pypdf import PdfReader

from fieldpipe.assessments import aggregate
from tests.helpers import auth

UDISE_A, UDISE_B = "02010100101", "02010200201"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.fixture
def schools(client, admin_key):
    """Two schools of the organization with a class each; returns the class ids."""
    h = auth(admin_key)
    ids = {}
    for udise, name, block in ((UDISE_A, "GSSS Mashobra", "Mashobra"), (UDISE_B, "GSSS Theog", "Theog")):
        assert client.post("/api/v1/schools", json={"udise": udise, "name": name, "district": "Shimla",
                                                     "block": block}, headers=h).status_code == 201
        ids[udise] = client.post(f"/api/v1/schools/{udise}/classes", json={"grade": 5, "section": "A"},
                                 headers=h).get_json()["id"]
    return ids


def new_student(class_id, **overrides) -> dict:
    body = {"class_id": class_id, "name": "Asha Thakur", "date_of_birth": "2015-04-02", "gender": "female",
            "guardians": [{"name": "Ramesh Thakur", "relation": "father", "phone": "+91 98765 43210"},
                          {"name": "Sita Thakur", "relation": "mother", "phone": "+919812345678",
                           "preferred_language": "en"}],
            "admission_number": "A-17", "previous_school": "Anganwadi Mashobra", "admitted_on": "2021-04-01"}
    body.update(overrides)
    return body


def _enroll(client, key, body, status=201):
    resp = client.post("/api/v1/enrollments", json=body, headers=auth(key))
    assert resp.status_code == status, resp.get_json()
    return resp.get_json()


def _count(conn, table):
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


@pytest.fixture
def enrolled(client, admin_key, schools):
    return _enroll(client, admin_key, new_student(schools[UDISE_A]))


@pytest.fixture
def left(client, admin_key, enrolled, object_store):
    resp = client.post(f"/api/v1/students/{enrolled['id']}/leave", json={"reason": "Family moved to Theog",
                                                                           "date": "2026-11-20"},
                       headers=auth(admin_key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def _verify(client, key, payload):
    resp = client.post("/api/v1/slc/verify", json={"qr_payload": payload}, headers=auth(key))
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()


# --- enrollment ------------------------------------------------------------------------------------------------

def test_enrollment_stores_the_record_with_normalised_guardians_and_a_first_period(client, conn, admin_key, schools,
                                                                                   enrolled):
    assert enrolled["status"] == "enrolled" and enrolled["class_id"] == schools[UDISE_A]
    assert enrolled["school"] == UDISE_A and enrolled["roll_number"] == "1"
    assert (enrolled["admission_number"], enrolled["previous_school"]) == ("A-17", "Anganwadi Mashobra")
    assert enrolled["guardians"] == [
        {"name": "Ramesh Thakur", "relation": "father", "phone": "+919876543210", "preferred_language": "hi",
         "opted_out": False},
        {"name": "Sita Thakur", "relation": "mother", "phone": "+919812345678", "preferred_language": "en",
         "opted_out": False}]
    assert [(e["school"], e["from"], e["to"], e["started_by"]) for e in enrolled["enrollments"]] == [
        (UDISE_A, "2021-04-01", None, "admission")]
    got = client.get(f"/api/v1/students/{enrolled['id']}", headers=auth(admin_key)).get_json()
    assert got == enrolled
    listed = client.get(f"/api/v1/classes/{schools[UDISE_A]}/students", headers=auth(admin_key)).get_json()["items"]
    assert [s["id"] for s in listed] == [enrolled["id"]]
    second = _enroll(client, admin_key, new_student(schools[UDISE_A], name="Ravi Negi", guardians=[
        {"name": "Mohan Negi", "relation": "guardian", "phone": "+919811111111"}]))
    assert second["roll_number"] == "2"
    [row] = conn.execute("SELECT action, subject, api_key_id FROM audit_log ORDER BY id LIMIT 1").fetchall()
    key_id = conn.execute("SELECT id FROM api_keys WHERE display_prefix = %s", (admin_key[:10],)).fetchone()["id"]
    assert row == {"action": "student.enrolled", "subject": f"student:{enrolled['id']}", "api_key_id": key_id}


def test_a_student_has_one_shape_in_every_answer(client, admin_key, schools, enrolled, object_store):
    """Roster listing, one student, the duplicate's existing student, a removal and an import all answer the
    same members with the same values (reading one student adds its history); a student who left has none of a
    current class."""
    h = auth(admin_key)
    alone = client.get(f"/api/v1/students/{enrolled['id']}", headers=h).get_json()
    history = {"enrollments", "certificates"}
    assert history <= set(alone)
    shape = {k: v for k, v in alone.items() if k not in history}
    [listed] = client.get(f"/api/v1/classes/{schools[UDISE_A]}/students", headers=h).get_json()["items"]
    duplicate = client.post("/api/v1/enrollments", json=new_student(schools[UDISE_B]), headers=h).get_json()
    same = {"roll_number": "1", "name": enrolled["name"], "parent_phone": enrolled["parent_phone"]}
    imported = client.post(f"/api/v1/classes/{schools[UDISE_A]}/students", headers=h,
                           json={"students": [same]}).get_json()["students"]
    assert listed == shape and duplicate["existing_student"] == shape and imported == [shape]
    assert shape["guardians"] and shape["date_of_birth"] and shape["school"] == UDISE_A
    removed = client.delete(f"/api/v1/students/{enrolled['id']}", headers=h).get_json()
    assert set(removed) == set(shape) and removed["deleted_at"] is not None
    assert {k: v for k, v in removed.items() if k != "deleted_at"} == {k: v for k, v in shape.items() if k != "deleted_at"}


def test_a_duplicate_registration_is_409_with_the_existing_student_and_stores_nothing(client, conn, admin_key,
                                                                                      other_org_admin_key, schools,
                                                                                      enrolled):
    before = (_count(conn, "students"), _count(conn, "guardians"), _count(conn, "enrollments"), _count(conn, "audit_log"))
    # Another school of the state, the name in other case and spacing, only the mother's phone in common.
    twin = new_student(schools[UDISE_B], name="  asha   THAKUR ", guardians=[
        {"name": "Sita", "relation": "mother", "phone": "+91 98123 45678"}])
    resp = client.post("/api/v1/enrollments", json=twin, headers=auth(admin_key))
    assert resp.status_code == 409 and resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["code"] == "409.20" and body["existing_student"]["id"] == enrolled["id"]
    assert (_count(conn, "students"), _count(conn, "guardians"), _count(conn, "enrollments"),
            _count(conn, "audit_log")) == before
    # Not a duplicate: another date of birth, another phone, or another organization (state).
    _enroll(client, admin_key, {**twin, "date_of_birth": "2015-04-03"})
    _enroll(client, admin_key, new_student(schools[UDISE_B], guardians=[
        {"name": "Sita", "relation": "mother", "phone": "+919800000000"}]))
    h = auth(other_org_admin_key)
    client.post("/api/v1/schools", json={"udise": UDISE_A, "name": "Rival", "district": "D", "block": "B"}, headers=h)
    rival_class = client.post(f"/api/v1/schools/{UDISE_A}/classes", json={"grade": 5}, headers=h).get_json()["id"]
    _enroll(client, other_org_admin_key, new_student(rival_class))


def test_a_student_imported_with_a_parent_phone_is_found_as_a_duplicate(client, conn, admin_key, schools):
    h = auth(admin_key)
    client.post(f"/api/v1/classes/{schools[UDISE_A]}/students", headers=h, json={"students": [
        {"roll_number": "7", "name": "Asha Thakur", "parent_phone": "+919876543210"}]})
    conn.execute("UPDATE students SET date_of_birth = '2015-04-02'")
    resp = client.post("/api/v1/enrollments", json=new_student(schools[UDISE_B]), headers=h)
    assert resp.status_code == 409


@pytest.mark.parametrize("change, field, code", [
    ({"class_id": 999999}, "class_id", "unknown"),
    ({"class_id": "5A"}, "class_id", "unknown"),
    ({"name": "  "}, "name", "required"),
    ({"date_of_birth": "02/04/2015"}, "date_of_birth", "date"),
    ({"date_of_birth": "2015-02-30"}, "date_of_birth", "date"),
    ({"date_of_birth": "2999-01-01"}, "date_of_birth", "future"),
    ({"gender": "F"}, "gender", "enum"),
    ({"guardians": []}, "guardians", "required"),
    ({"guardians": [{"name": "X", "relation": "uncle", "phone": "+919876543210"}]}, "guardians[0].relation", "enum"),
    ({"guardians": [{"name": "X", "relation": "father", "phone": "12345"}]}, "guardians[0].phone", "phone"),
    ({"guardians": [{"name": "X", "relation": "father", "phone": "+919876543210", "preferred_language": "Hindi"}]},
     "guardians[0].preferred_language", "pattern"),
    ({"guardians": [{"name": "X", "relation": "father", "phone": "+919876543210", "preferred_language": "hi\n"}]},
     "guardians[0].preferred_language", "pattern"),
    ({"guardians": [{"name": "X", "relation": "father"}]}, "guardians", "phone_required"),
    ({"admitted_on": "2010-01-01"}, "admitted_on", "before_birth"),
    ({"nickname": "Ashu"}, "nickname", "unknown"),
    ({"out_of_state": {"state": "Punjab"}}, "out_of_state.school_name", "required"),
    ({"out_of_state": {"state": "Punjab", "school_name": "GSSS Ropar", "certificate_number": "TC-1",
                       "issued_on": "2026-11-01", "document_url": "ftp://x"}}, "out_of_state.document_url", "url"),
])
def test_bad_enrollment_is_422_naming_the_field_and_stores_nothing(client, conn, admin_key, schools, change, field,
                                                                   code):
    resp = client.post("/api/v1/enrollments", json={**new_student(schools[UDISE_A]), **change}, headers=auth(admin_key))
    assert resp.status_code == 422, resp.get_json()
    assert {"field": field, "code": code} in [{k: e[k] for k in ("field", "code")} for e in resp.get_json()["errors"]]
    assert _count(conn, "students") == 0 and _count(conn, "audit_log") == 0


def test_another_organizations_class_is_unknown_and_a_collector_may_not_enroll(client, admin_key, collector_key,
                                                                               other_org_admin_key, schools):
    resp = client.post("/api/v1/enrollments", json=new_student(schools[UDISE_A]), headers=auth(other_org_admin_key))
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["field"] == "class_id"
    assert client.post("/api/v1/enrollments", json=new_student(schools[UDISE_A]),
                       headers=auth(collector_key)).status_code == 403


def test_a_taken_roll_number_is_409(client, admin_key, schools, enrolled):
    resp = client.post("/api/v1/enrollments", json=new_student(schools[UDISE_A], name="Ravi", roll_number="1"),
                       headers=auth(admin_key))
    assert resp.status_code == 409 and resp.get_json()["code"] == "409.2"


# --- leaving and the certificate -------------------------------------------------------------------------------

def test_leaving_ends_the_enrollment_and_issues_a_pdf_whose_qr_code_carries_the_verified_payload(
        client, conn, admin_key, collector_key, schools, enrolled, left, object_store):
    slc = left["slc"]
    assert slc["qr_payload"].startswith("FPSLC1.") and slc["leaving_date"] == "2026-11-20"
    assert left["student"]["status"] == "left" and left["student"]["left_on"] == "2026-11-20"
    assert left["student"]["enrollments"][0]["to"] == "2026-11-20"
    assert slc["pdf_url"].endswith(f"/api/v1/slc/{slc['id']}/pdf") and slc["pdf_url"].startswith("http")
    pdf = client.get(slc["pdf_url"].split("localhost", 1)[1], headers=auth(collector_key))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf" and pdf.data.startswith(b"%PDF")
    assert object_store.head(f"slc/{conn.execute('SELECT id FROM organizations WHERE slug = %s', ('acme',)).fetchone()['id']}"
                             f"/{slc['id']}.pdf").size == len(pdf.data)
    page = PdfReader(io.BytesIO(pdf.data)).pages[0]
    text = page.extract_text()
    for expected in ("School Leaving Certificate", "Asha Thakur", "GSSS Mashobra", UDISE_A, "2026-11-20",
                     "Family moved to Theog", "2015-04-02", "Ramesh Thakur (father)", "प्रमाणपत्र संख्या"):
        assert expected in text, expected
    # The QR code drawn in the PDF is, module for module, the code of the answer's qr_payload.
    [image] = page.images
    matrix = segno.make(slc["qr_payload"], error="m", micro=False).matrix
    modules = len(matrix)
    pixels = image.image.convert("L").resize((modules + 4, modules + 4))
    drawn = [[pixels.getpixel((c + 2, r + 2)) < 128 for c in range(modules)] for r in range(modules)]
    assert drawn == [[bool(v) for v in row] for row in matrix]
    assert _verify(client, collector_key, slc["qr_payload"]) == {
        "valid": True, "reason": None, "detail": None, "kid": slc["kid"],
        "certificate": {"id": slc["id"], "student_id": enrolled["id"], "name": "Asha Thakur",
                        "date_of_birth": "2015-04-02", "school": UDISE_A, "class": "5A", "leaving_date": "2026-11-20"}}
    # Gone from the class list; marks for the student are refused from now on.
    listed = client.get(f"/api/v1/classes/{schools[UDISE_A]}/students", headers=auth(admin_key)).get_json()["items"]
    assert listed == []
    audit = client.get(f"/api/v1/audit?subject=student:{enrolled['id']}", headers=auth(admin_key)).get_json()["items"]
    assert [a["action"] for a in audit] == ["student.enrolled", "student.left"]
    assert audit[1]["details"]["kid"] == slc["kid"] and audit[1]["api_key"] == admin_key[:10]


@pytest.mark.parametrize("body, field, code", [
    ({"reason": "Moved", "date": "2021-03-31"}, "date", "before_admission"),
    ({"reason": "Moved", "date": "2999-01-01"}, "date", "future"),
    ({"reason": "Moved", "date": "20-11-2026"}, "date", "date"),
    ({"reason": "", "date": "2026-11-20"}, "reason", "required"),
    ({"reason": ["Moved"], "date": "2026-11-20"}, "reason", "type"),
    ({"date": "2026-11-20"}, "reason", "required"),
])
def test_bad_leaving_is_422_and_changes_nothing(client, conn, admin_key, enrolled, object_store, body, field, code):
    resp = client.post(f"/api/v1/students/{enrolled['id']}/leave", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [(field, code)]
    assert client.get(f"/api/v1/students/{enrolled['id']}", headers=auth(admin_key)).get_json() == enrolled
    assert _count(conn, "school_leaving_certificates") == 0 and list(object_store.list("slc/")) == []


def test_leaving_twice_is_409_and_another_organization_sees_no_student(client, admin_key, other_org_admin_key,
                                                                       enrolled, left):
    for no_such in ("99999999999999999999", "0", "x1"):
        assert client.get(f"/api/v1/students/{no_such}", headers=auth(admin_key)).status_code == 404
        assert client.post(f"/api/v1/transfers/{no_such}/review", json={"decision": "accepted"},
                           headers=auth(admin_key)).status_code == 404
        assert client.get(f"/api/v1/slc/{no_such}", headers=auth(admin_key)).status_code == 404
    again = client.post(f"/api/v1/students/{enrolled['id']}/leave", json={"reason": "x", "date": "2026-11-21"},
                        headers=auth(admin_key))
    assert again.status_code == 409 and again.get_json()["code"] == "409.22"
    assert client.post(f"/api/v1/students/{enrolled['id']}/leave", json={"reason": "x", "date": "2026-11-21"},
                       headers=auth(other_org_admin_key)).status_code == 404
    assert client.get(f"/api/v1/slc/{left['slc']['id']}/pdf", headers=auth(other_org_admin_key)).status_code == 404


def _tampered(payload: str, **changes) -> str:
    prefix, body, signature = payload.split(".")
    fields = {**json.loads(_unb64(body)), **changes}
    return ".".join((prefix, _b64(json.dumps(fields, separators=(",", ":")).encode()), signature))


def test_forged_altered_and_malformed_payloads_do_not_verify(client, collector_key, left):
    payload = left["slc"]["qr_payload"]
    assert _verify(client, collector_key, _tampered(payload, n="Someone Else"))["reason"] == "bad-signature"
    assert _verify(client, collector_key, _tampered(payload, l="2026-12-01"))["reason"] == "bad-signature"
    # Signed, but by a key this system never published.
    prefix, body, _ = _tampered(payload, k="f0f0f0f0").split(".")
    forged = f"{prefix}.{body}.{_b64(Ed25519PrivateKey.generate().sign(f'{prefix}.{body}'.encode()))}"
    assert _verify(client, collector_key, forged)["reason"] == "unknown-key"
    # The right key id, the wrong private key.
    prefix, body, _ = payload.split(".")
    forged = f"{prefix}.{body}.{_b64(Ed25519PrivateKey.generate().sign(f'{prefix}.{body}'.encode()))}"
    assert _verify(client, collector_key, forged) == {"valid": False, "reason": "bad-signature", "detail": None,
                                                      "kid": left["slc"]["kid"], "certificate": None}
    for broken in ("hello", payload[:-5], payload.replace("FPSLC1", "FPSLC2"), "FPSLC1.!!!.???"):
        result = _verify(client, collector_key, broken)
        assert result["valid"] is False and result["reason"] in ("malformed", "bad-signature"), broken
    assert client.post("/api/v1/slc/verify", json={"qr_payload": ""}, headers=auth(collector_key)).status_code == 422


def test_published_keys_verify_a_payload_offline(client, left):
    resp = client.get("/.well-known/fieldpipe-slc-keys")
    assert resp.status_code == 200
    [key] = resp.get_json()["keys"]
    assert (key["kid"], key["crv"], key["status"], key["organization"]) == (left["slc"]["kid"], "Ed25519", "active", "acme")
    assert "d" not in key and "private_key" not in key
    prefix, body, signature = left["slc"]["qr_payload"].split(".")
    Ed25519PublicKey.from_public_bytes(_unb64(key["x"])).verify(_unb64(signature), f"{prefix}.{body}".encode())


# --- transfers -------------------------------------------------------------------------------------------------

def test_a_transfer_within_the_state_moves_the_same_student_once(client, conn, admin_key, collector_key, schools,
                                                                 enrolled, left):
    payload = left["slc"]["qr_payload"]
    moved = _enroll(client, admin_key, {"class_id": schools[UDISE_B], "slc_qr_payload": payload,
                                        "admitted_on": "2026-11-23", "admission_number": "T-9"})
    assert moved["id"] == enrolled["id"] and moved["status"] == "enrolled"
    assert (moved["class_id"], moved["school"], moved["admission_number"]) == (schools[UDISE_B], UDISE_B, "T-9")
    assert moved["previous_school"] == f"GSSS Mashobra ({UDISE_A})"
    assert [(e["school"], e["from"], e["to"], e["started_by"]) for e in moved["enrollments"]] == [
        (UDISE_A, "2021-04-01", "2026-11-20", "admission"), (UDISE_B, "2026-11-23", None, "transfer")]
    assert moved["guardians"] == enrolled["guardians"] and moved["certificates"][0]["used_at"] is not None
    assert _count(conn, "students") == 1
    again = client.post("/api/v1/enrollments", json={"class_id": schools[UDISE_A], "slc_qr_payload": payload},
                        headers=auth(admin_key))
    assert again.status_code == 409 and again.get_json()["code"] == "409.21"
    assert _verify(client, collector_key, payload)["reason"] == "already-used"
    assert _count(conn, "enrollments") == 2
    audit = client.get(f"/api/v1/audit?subject=student:{enrolled['id']}", headers=auth(admin_key)).get_json()["items"]
    assert [a["action"] for a in audit] == ["student.enrolled", "student.left", "student.transferred"]


@pytest.mark.parametrize("change, field, code", [
    ({"admitted_on": "2026-11-19"}, "admitted_on", "before_leaving"),
    ({"class_id": 999999}, "class_id", "unknown"),
    ({"name": "Asha"}, "name", "unknown"),
])
def test_a_bad_transfer_is_422_and_leaves_the_certificate_unused(client, conn, admin_key, schools, left, change,
                                                                 field, code):
    body = {"class_id": schools[UDISE_B], "slc_qr_payload": left["slc"]["qr_payload"], **change}
    resp = client.post("/api/v1/enrollments", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [(field, code)]
    assert conn.execute("SELECT used_at FROM school_leaving_certificates").fetchone()["used_at"] is None


def test_a_forged_or_other_states_certificate_is_refused_and_changes_nothing(client, conn, admin_key,
                                                                             other_org_admin_key, schools, left):
    resp = client.post("/api/v1/enrollments", headers=auth(admin_key), json={
        "class_id": schools[UDISE_B], "slc_qr_payload": _tampered(left["slc"]["qr_payload"], s=12345)})
    assert resp.status_code == 422 and resp.get_json()["code"] == "422.20"
    assert resp.get_json()["reason"] == "bad-signature"
    h = auth(other_org_admin_key)
    client.post("/api/v1/schools", json={"udise": UDISE_A, "name": "Rival", "district": "D", "block": "B"}, headers=h)
    rival_class = client.post(f"/api/v1/schools/{UDISE_A}/classes", json={"grade": 5}, headers=h).get_json()["id"]
    resp = client.post("/api/v1/enrollments", headers=h, json={"class_id": rival_class,
                                                               "slc_qr_payload": left["slc"]["qr_payload"]})
    assert resp.status_code == 422 and resp.get_json()["reason"] == "other-organization"
    assert conn.execute("SELECT used_at FROM school_leaving_certificates").fetchone()["used_at"] is None
    assert _count(conn, "enrollments") == 1


def test_rotation_keeps_old_certificates_valid_and_a_revoked_key_is_refused(client, admin_key, collector_key,
                                                                           schools, left):
    h = auth(admin_key)
    old_kid = left["slc"]["kid"]
    rotated = client.post("/api/v1/slc-keys/rotate", headers=h)
    assert rotated.status_code == 201 and rotated.get_json()["kid"] != old_kid
    assert _verify(client, collector_key, left["slc"]["qr_payload"])["valid"] is True
    keys = client.get("/api/v1/slc-keys", headers=h).get_json()["items"]
    assert {k["kid"]: k["status"] for k in keys} == {old_kid: "retired", rotated.get_json()["kid"]: "active"}
    assert client.post("/api/v1/slc-keys/rotate", headers=auth(collector_key)).status_code == 403
    assert client.post(f"/api/v1/slc-keys/{old_kid}/revoke", headers=h).get_json()["status"] == "revoked"
    assert _verify(client, collector_key, left["slc"]["qr_payload"])["reason"] == "key-revoked"
    resp = client.post("/api/v1/enrollments", headers=h, json={"class_id": schools[UDISE_B],
                                                               "slc_qr_payload": left["slc"]["qr_payload"]})
    assert resp.status_code == 422 and resp.get_json()["reason"] == "key-revoked"
    published = {k["kid"]: k["status"] for k in client.get("/.well-known/fieldpipe-slc-keys").get_json()["keys"]}
    assert published[old_kid] == "revoked"
    assert client.post("/api/v1/slc-keys/nokey/revoke", headers=h).status_code == 404


def test_a_revoked_certificate_is_refused(client, admin_key, collector_key, schools, left):
    h = auth(admin_key)
    assert client.post(f"/api/v1/slc/{left['slc']['id']}/revoke", headers=h).get_json()["revoked_at"] is not None
    assert _verify(client, collector_key, left["slc"]["qr_payload"])["reason"] == "certificate-revoked"
    resp = client.post("/api/v1/enrollments", headers=h, json={"class_id": schools[UDISE_B],
                                                               "slc_qr_payload": left["slc"]["qr_payload"]})
    assert resp.status_code == 422 and resp.get_json()["reason"] == "certificate-revoked"


def test_a_transfer_from_another_state_is_recorded_for_review(client, conn, admin_key, schools):
    document = {"state": "Punjab", "school_name": "GSSS Ropar", "certificate_number": "TC/2026/118",
                "issued_on": "2026-10-30", "document_url": "https://docs.example.org/tc-118.pdf"}
    student = _enroll(client, admin_key, new_student(schools[UDISE_B], previous_school=None, out_of_state=document))
    assert student["transfer_review"]["status"] == "pending" and student["transfer_review"]["document"] == document
    assert student["previous_school"] == "GSSS Ropar, Punjab"
    assert student["enrollments"][0]["started_by"] == "out_of_state"
    h = auth(admin_key)
    [pending] = client.get("/api/v1/transfers?status=pending", headers=h).get_json()["items"]
    assert (pending["student_id"], pending["document"]) == (student["id"], document)
    assert client.get("/api/v1/transfers?status=maybe", headers=h).status_code == 422
    url = f"/api/v1/transfers/{pending['id']}/review"
    assert client.post(url, json={"decision": "perhaps"}, headers=h).status_code == 422
    reviewed = client.post(url, json={"decision": "accepted", "note": "TC checked by phone"}, headers=h).get_json()
    assert (reviewed["status"], reviewed["review_note"]) == ("accepted", "TC checked by phone")
    assert client.post(url, json={"decision": "rejected"}, headers=h).get_json()["code"] == "409.24"
    audit = client.get(f"/api/v1/audit?subject=student:{student['id']}", headers=h).get_json()["items"]
    assert [a["action"] for a in audit] == ["student.transferred_from_other_state", "transfer.accepted"]
    # The audit log pages like every listing.
    first = client.get("/api/v1/audit?limit=1", headers=h).get_json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = client.get(f"/api/v1/audit?limit=1&cursor={first['next_cursor']}", headers=h).get_json()
    assert second["items"][0]["action"] == "transfer.accepted" and second["next_cursor"] is None
    bad = client.get("/api/v1/audit?cursor=nonsense", headers=h)
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "cursor"


# --- history in the summaries ----------------------------------------------------------------------------------

def _assessment(client, key, class_ids, title):
    resp = client.post("/api/v1/assessments", headers=auth(key), json={
        "title": title, "type": "LO", "evaluation": "Marks", "outcome": "TSP",
        "items": [{"key": "LO1", "max_marks": 10}], "pass_criterion": {"min_percent": 40}, "class_ids": class_ids})
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()["id"]


def _marks(client, key, assessment_id, class_id, student_id, marks):
    resp = client.post(f"/api/v1/assessments/{assessment_id}/submissions/student", headers=auth(key), json={
        "submission_id": str(uuid.uuid4()), "class_id": class_id, "submitted_at": "2026-11-20T10:00:00+05:30",
        "collector": {"id": "teacher"}, "entries": [{"student_id": student_id, "is_present": True,
                                                      "marks": {"LO1": marks}}]})
    return resp


def _class_rows(conn, assessment_id):
    end = conn.execute("SELECT clock_timestamp() + interval '1 second' AS t").fetchone()["t"]
    aggregate.summarize_interval(conn, end - dt.timedelta(days=1), end)
    return {(r["class_id"], r["students_assessed"], r["mean_marks"]) for r in conn.execute(
        """SELECT class_id, students_assessed, mean_marks FROM assessment_summaries
            WHERE assessment_id = %s AND level = 'class'""", (assessment_id,))}


def test_a_transfer_mid_term_leaves_earlier_marks_in_the_class_where_they_were_given(client, conn, admin_key, schools,
                                                                                    enrolled, object_store):
    class_a, class_b = schools[UDISE_A], schools[UDISE_B]
    term_test = _assessment(client, admin_key, [class_a, class_b], "Term test")
    assert _marks(client, admin_key, term_test, class_a, enrolled["id"], 8).status_code == 201
    before = _class_rows(conn, term_test)
    assert before == {(class_a, 1, 8)}
    today = dt.date.today().isoformat()
    left = client.post(f"/api/v1/students/{enrolled['id']}/leave", json={"reason": "Moved", "date": today},
                       headers=auth(admin_key)).get_json()
    # Between leaving and the transfer, marks for the student are refused in the old class.
    refused = _marks(client, admin_key, term_test, class_a, enrolled["id"], 9)
    assert refused.status_code == 422 and refused.get_json()["errors"][0]["code"] == "deleted_student"
    _enroll(client, admin_key, {"class_id": class_b, "slc_qr_payload": left["slc"]["qr_payload"]})
    assert _class_rows(conn, term_test) == before
    unit_test = _assessment(client, admin_key, [class_a, class_b], "Unit test")
    assert _marks(client, admin_key, unit_test, class_a, enrolled["id"], 5).status_code == 422
    assert _marks(client, admin_key, unit_test, class_b, enrolled["id"], 6).status_code == 201
    assert _class_rows(conn, unit_test) == {(class_b, 1, 6)}
    assert _class_rows(conn, term_test) == before
    assert conn.execute("SELECT count(*) AS n FROM assessment_anomalies").fetchone()["n"] == 0


def test_the_demo_transfers_its_student_once_and_loading_again_changes_nothing(client, conn, admin_key, object_store):
    from fieldpipe.dev.demo import load_demo, load_demo_with_storage

    load_demo(conn)
    first = load_demo_with_storage(conn)
    load_demo(conn)
    assert load_demo_with_storage(conn) == first
    [student] = conn.execute("SELECT id, left_on FROM students WHERE name = 'Anjali Kaushal'").fetchall()
    assert student["left_on"] is None
    periods = conn.execute("""SELECT s.udise, e.ended_on IS NULL AS current FROM enrollments e
                                JOIN schools s ON s.id = e.school_id WHERE e.student_id = %s ORDER BY e.id""",
                           (student["id"],)).fetchall()
    assert [(p["udise"], p["current"]) for p in periods] == [("02010100101", False), ("02010200201", True)]
    certificate = conn.execute("SELECT used_at, pdf_key FROM school_leaving_certificates").fetchone()
    assert certificate["used_at"] is not None and object_store.head(certificate["pdf_key"]) is not None


# --- guardians through the class import ------------------------------------------------------------------------

def test_the_class_import_takes_guardians_as_json_or_csv_columns_and_replaces_them(client, conn, admin_key, schools):
    h, class_id = auth(admin_key), schools[UDISE_A]
    url = f"/api/v1/classes/{class_id}/students"
    resp = client.post(url, headers=h, json={"students": [
        {"roll_number": "1", "name": "Asha", "guardians": [
            {"name": "Ramesh", "relation": "father", "phone": "+91 98765 43210"},
            {"name": "Sita", "relation": "mother", "phone": None, "opted_out": True}]},
        {"roll_number": "2", "name": "Ravi", "parent_phone": "+919811111111"}]})
    assert resp.status_code == 200, resp.get_json()
    asha, ravi = resp.get_json()["students"]
    assert asha["parent_phone"] == "+919876543210"
    assert asha["guardians"] == [
        {"name": "Ramesh", "relation": "father", "phone": "+919876543210", "preferred_language": "hi", "opted_out": False},
        {"name": "Sita", "relation": "mother", "phone": None, "preferred_language": "hi", "opted_out": True}]
    folded = [{"name": "Parent", "relation": "guardian", "phone": "+919811111111", "preferred_language": "hi",
               "opted_out": False}]
    assert ravi["guardians"] == folded  # a parent_phone alone becomes a guardian (announcements read guardians)
    csv_body = ("roll_number,name,parent_phone,guardian_name,guardian_relation,guardian_phone,guardian_language,"
                "guardian_opted_out\n1,Asha,,Sita,mother,+919812345678,en,no\n2,Ravi,+919811111111,,,,,\n")
    resp = client.post(url, data=csv_body.encode(), headers={**h, "Content-Type": "text/csv"})
    assert resp.status_code == 200, resp.get_json()
    listed = {s["roll_number"]: s for s in client.get(url, headers=h).get_json()["items"]}
    assert listed["1"]["guardians"] == [{"name": "Sita", "relation": "mother", "phone": "+919812345678",
                                         "preferred_language": "en", "opted_out": False}]
    assert listed["2"]["guardians"] == folded  # a row without guardian columns keeps what the student had
    before = _count(conn, "guardians")
    bad = client.post(url, headers=h, json={"students": [
        {"roll_number": "3", "name": "Meena", "guardians": [{"name": "X", "relation": "uncle", "phone": "+919876543210"}]},
        {"roll_number": "4", "name": "Sunil", "guardians": [{"name": "Y", "relation": "father", "phone": "123"}]}]})
    assert bad.status_code == 422
    assert [(e["field"], e["code"]) for e in bad.get_json()["errors"]] == [
        ("students[0].guardians[0].relation", "enum"), ("students[1].guardians[0].phone", "phone")]
    bad_csv = "roll_number,name,guardian_name,guardian_relation,guardian_opted_out\n5,Kiran,Mohan,father,maybe\n"
    resp = client.post(url, data=bad_csv.encode(), headers={**h, "Content-Type": "text/csv"})
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["field"] == "students[0].guardians[0].opted_out"
    assert _count(conn, "guardians") == before and _count(conn, "students") == 2


# --- at the same time ------------------------------------------------------------------------------------------

def _at_once(app, requests_):
    """Send the requests from as many threads released together; return the status codes."""
    import threading

    barrier = threading.Barrier(len(requests_))
    statuses = [None] * len(requests_)

    def send(index, key, body):
        client = app.test_client()
        barrier.wait()
        statuses[index] = client.post("/api/v1/enrollments", json=body, headers=auth(key)).status_code

    threads = [threading.Thread(target=send, args=(i, *r)) for i, r in enumerate(requests_)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(statuses)


def test_two_schools_presenting_one_certificate_at_once_move_the_student_once(app, conn, admin_key, schools, left):
    body = {"slc_qr_payload": left["slc"]["qr_payload"]}
    statuses = _at_once(app, [(admin_key, {**body, "class_id": schools[UDISE_A]}),
                              (admin_key, {**body, "class_id": schools[UDISE_B]})])
    assert statuses == [201, 409]
    assert _count(conn, "enrollments") == 2 and _count(conn, "students") == 1


def test_the_same_registration_twice_at_once_makes_one_student(app, conn, admin_key, schools):
    statuses = _at_once(app, [(admin_key, new_student(schools[UDISE_A])), (admin_key, new_student(schools[UDISE_B]))])
    assert statuses == [201, 409]
    assert _count(conn, "students") == 1

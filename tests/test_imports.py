"""Bulk imports: upload or drop a CSV/XLSX file, rows land once, a report per file, files move on."""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from openpyxl import Workbook, load_workbook

from fieldpipe.db import connect
from fieldpipe.imports import jobs
from tests.helpers import auth

FORM = "household-survey"
HEADER = ["submitted_at", "collector_id", "name", "phone", "city", "monthly_income", "monthly_savings", "local_word"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def row(i: int, **overrides) -> dict:
    values = {"submitted_at": "2026-11-20T10:15:00+05:30", "collector_id": f"enum-{i % 3}", "name": f"Resp {i}",
              "phone": "", "city": "pune", "monthly_income": str(20000 + i), "monthly_savings": "5000",
              "local_word": "पानी"}
    values.update(overrides)
    return values


def csv_bytes(rows: list[dict], header: list[str] = HEADER, delimiter: str = ",", bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(header)
    for r in rows:
        writer.writerow([r.get(h, "") for h in header])
    return out.getvalue().encode("utf-8-sig" if bom else "utf-8")


def xlsx_bytes(rows: list[list]) -> bytes:
    workbook = Workbook()
    for r in rows:
        workbook.active.append(r)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def upload(client, key: str, name: str, content: bytes, slug: str = FORM):
    return client.post(f"/api/v1/forms/{slug}/imports", headers=auth(key),
                       data={"file": (io.BytesIO(content), name)}, content_type="multipart/form-data")


def run_waiting(db_url: str, store) -> list[dict]:
    """What one import_responses task does: claim what waits in incoming/, run each import."""
    with connect(db_url) as conn:
        return [jobs.run_import(conn, store, import_id) for import_id in jobs.claim_incoming(conn, store)]


def responses_of(client, key: str, slug: str = FORM) -> list[dict]:
    resp = client.get(f"/api/v1/forms/{slug}/responses?limit=1000", headers=auth(key))
    assert resp.status_code == 200
    return resp.get_json()["items"]


def keys_under(store, prefix: str) -> list[str]:
    return sorted(info.key for info in store.list(prefix))


@pytest.fixture
def form(make_form):
    return make_form(FORM)


def test_uploaded_csv_lands_its_rows_moves_to_processed_with_a_report(client, admin_key, form, object_store, clean_db):
    resp = upload(client, admin_key, "march.csv", csv_bytes([row(i) for i in range(3)]))
    assert resp.status_code == 202, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "queued" and resp.headers["Location"].endswith(body["id"])
    assert keys_under(object_store, f"acme/{FORM}/incoming/") == [f"acme/{FORM}/incoming/march.csv"]
    collector_thresholds, switch_interval = gc.get_threshold(), sys.getswitchinterval()

    (report,) = run_waiting(clean_db, object_store)

    # both changed while the rows streamed, for this process only
    assert (gc.get_threshold(), sys.getswitchinterval()) == (collector_thresholds, switch_interval)

    shown = client.get(f"/api/v1/forms/{FORM}/imports/{body['id']}", headers=auth(admin_key)).get_json()
    assert {k: shown[k] for k in ("status", "rows", "created", "duplicate", "conflict", "invalid")} == \
        {"status": "done", "rows": 3, "created": 3, "duplicate": 0, "conflict": 0, "invalid": 0}
    assert shown["errors"] == [] and report["id"] == body["id"]
    stored = responses_of(client, admin_key)
    assert sorted(r["answers"]["monthly_income"] for r in stored) == [20000, 20001, 20002]
    assert {r["collector"]["id"] for r in stored} == {"enum-0", "enum-1", "enum-2"}
    assert keys_under(object_store, f"acme/{FORM}/incoming/") == []
    assert keys_under(object_store, f"acme/{FORM}/processed/") == [
        f"acme/{FORM}/processed/march.csv", f"acme/{FORM}/processed/march.csv.report.json"]
    in_s3 = json.loads(object_store.get(f"acme/{FORM}/processed/march.csv.report.json"))
    assert in_s3["status"] == "done" and in_s3["created"] == 3 and in_s3["errors"] == []
    assert in_s3["object_key"] == shown["object_key"] == f"acme/{FORM}/processed/march.csv"


def test_the_same_file_again_creates_nothing(client, admin_key, form, object_store, clean_db):
    content = csv_bytes([row(i) for i in range(4)])
    upload(client, admin_key, "april.csv", content)
    run_waiting(clean_db, object_store)
    object_store.put(f"acme/{FORM}/incoming/april.csv", content)  # the second drop, straight into the bucket

    (again,) = run_waiting(clean_db, object_store)

    assert (again["status"], again["rows"], again["created"], again["duplicate"]) == ("done", 4, 0, 4)
    assert again["source"] == "s3"
    assert len(responses_of(client, admin_key)) == 4
    report = json.loads(object_store.get(f"acme/{FORM}/processed/april.csv.report.json"))
    assert (report["created"], report["duplicate"]) == (0, 4)


def test_a_row_without_submission_id_gets_the_uuid5_of_the_file_s_hash_and_its_row_number(
        client, admin_key, form, object_store, clean_db):
    """The documented derivation: files imported by any earlier release are recognised when imported again."""
    content = csv_bytes([row(i) for i in range(3)])
    upload(client, admin_key, "may.csv", content)
    run_waiting(clean_db, object_store)

    digest, namespace = hashlib.sha256(content).hexdigest(), uuid.UUID("6f1d8c52-4d1e-4b7e-9a57-3c1f0a2b9e64")
    assert {r["submission_id"] for r in responses_of(client, admin_key)} == {
        str(uuid.uuid5(namespace, f"{digest}:{number}")) for number in (2, 3, 4)}


def test_an_xlsx_upload_gives_the_same_responses_as_the_csv(client, admin_key, form, object_store, clean_db):
    rows = [row(i) for i in range(3)]
    upload(client, admin_key, "a.csv", csv_bytes(rows))
    (from_csv,) = run_waiting(clean_db, object_store)
    by_csv = {r["answers"]["name"]: r for r in responses_of(client, admin_key)}
    # Typed cells, as a spreadsheet holds them: numbers as numbers.
    sheet = [HEADER] + [[r["submitted_at"], r["collector_id"], r["name"], None, r["city"], int(r["monthly_income"]),
                         5000, r["local_word"]] for r in rows]
    workbook = xlsx_bytes(sheet)  # once: a workbook saved again carries a new timestamp, so other bytes
    upload(client, admin_key, "a.xlsx", workbook)

    (from_xlsx,) = run_waiting(clean_db, object_store)

    assert from_xlsx["status"] == "done" and from_xlsx["rows"] == 3 and from_xlsx["invalid"] == 0
    # A different file, so its rows get ids of their own: three more responses, equal in content.
    assert from_xlsx["created"] == 3
    stored = responses_of(client, admin_key)
    assert len(stored) == 6
    for r in stored:
        assert r["answers"] == by_csv[r["answers"]["name"]]["answers"]
    second = upload(client, admin_key, "a.xlsx", workbook)
    assert second.status_code == 202
    (again,) = run_waiting(clean_db, object_store)
    assert (again["created"], again["duplicate"]) == (0, 3)
    assert keys_under(object_store, f"acme/{FORM}/processed/") == [
        f"acme/{FORM}/processed/{n}" for n in ("a.csv", "a.csv.report.json", "a.xlsx", "a.xlsx.report.json")]


def test_semicolons_a_byte_order_mark_and_labels_as_headers_are_read(client, admin_key, form, object_store, clean_db):
    header = ["Submitted at", "Collector id", "Respondent name", "City", "Monthly income", "monthly_savings"]
    keyed = [{"Submitted at": "2026-11-20T10:15:00+05:30", "Collector id": "e1", "Respondent name": "Zoë; Ann",
              "City": "shimla", "Monthly income": "7", "monthly_savings": "1"}]
    upload(client, admin_key, "semi.csv", csv_bytes(keyed, header, delimiter=";", bom=True))

    (report,) = run_waiting(clean_db, object_store)

    assert (report["status"], report["created"]) == ("done", 1), report
    (stored,) = responses_of(client, admin_key)
    assert stored["answers"] == {"name": "Zoë; Ann", "city": "shimla", "monthly_income": 7, "monthly_savings": 1}


def test_bad_rows_are_reported_with_number_column_and_reason_while_good_rows_land(
        client, admin_key, form, object_store, clean_db):
    rows = [row(0), row(1, monthly_income="lots"), row(2, city="paris"), row(3), row(4, name="", collector_id=""),
            row(5, submitted_at="2026-11-20 10:15")]
    upload(client, admin_key, "mixed.csv", csv_bytes(rows))

    (report,) = run_waiting(clean_db, object_store)

    assert {k: report[k] for k in ("status", "rows", "created", "invalid")} == \
        {"status": "done", "rows": 6, "created": 2, "invalid": 4}
    errors = {(e["row"], e["column"], e["code"]) for e in report["errors"]}
    assert errors == {(3, "monthly_income", "type"), (4, "city", "choice"), (6, "name", "required"),
                      (6, "collector_id", "required"), (7, "submitted_at", "timezone")}
    assert all(e["reason"] for e in report["errors"])
    assert sorted(r["answers"]["name"] for r in responses_of(client, admin_key)) == ["Resp 0", "Resp 3"]
    in_s3 = json.loads(object_store.get(f"acme/{FORM}/processed/mixed.csv.report.json"))
    assert {(e["row"], e["column"], e["code"]) for e in in_s3["errors"]} == errors


LATIN1 = "submitted_at,collector_id,name,city,monthly_income,monthly_savings\n" \
         "2026-11-20T10:15:00+05:30,e1,Zoë,pune,1,1\n".encode("latin-1")


@pytest.mark.parametrize("name, content, code", [
    ("extra.csv", csv_bytes([row(0)], HEADER + ["shoe_size"]), "unknown_column"),
    ("short.csv", csv_bytes([row(0)], [h for h in HEADER if h != "city"]), "missing_column"),
    ("nocollector.csv", csv_bytes([row(0)], [h for h in HEADER if h != "collector_id"]), "missing_column"),
    ("latin1.csv", LATIN1, "wrong_encoding"),
    ("survey.pdf", b"%PDF-1.4 not a table", "unsupported_format"),
    ("binary.csv", b"submitted_at,collector_id\x00\x01\x02", "unsupported_format"),
    ("fake.xlsx", b"submitted_at,collector_id\n", "unsupported_format"),
    ("old.xls", b"\xd0\xcf\x11\xe0 an old Excel file", "unsupported_format"),
])
def test_a_bad_file_is_refused_as_a_whole_with_a_report(client, admin_key, form, object_store, clean_db,
                                                         name, content, code):
    resp = upload(client, admin_key, name, content)
    assert resp.status_code == 202

    (report,) = run_waiting(clean_db, object_store)

    assert (report["status"], report["code"], report["created"]) == ("failed", code, 0), report
    assert report["reason"]
    assert responses_of(client, admin_key) == []
    assert keys_under(object_store, f"acme/{FORM}/failed/") == [
        f"acme/{FORM}/failed/{name}", f"acme/{FORM}/failed/{name}.report.json"]
    assert json.loads(object_store.get(f"acme/{FORM}/failed/{name}.report.json"))["code"] == code


def test_header_problems_name_each_column(client, admin_key, form, object_store, clean_db):
    upload(client, admin_key, "h.csv", csv_bytes([row(0)], [h for h in HEADER if h != "city"] + ["shoe_size"]))
    (report,) = run_waiting(clean_db, object_store)
    assert {(e["row"], e["column"], e["code"]) for e in report["errors"]} == \
        {(1, "shoe_size", "unknown_column"), (1, "city", "missing_column")}


def test_a_file_dropped_for_a_form_that_does_not_exist_is_refused_with_a_report(object_store, clean_db, form):
    object_store.put("acme/no-such-form/incoming/x.csv", csv_bytes([row(0)]))
    # Not files waiting: a folder placeholder, a nested key, a key outside any incoming/ prefix.
    for key in (f"acme/{FORM}/incoming/", f"acme/{FORM}/incoming/old/y.csv", f"acme/{FORM}/y.csv"):
        object_store.put(key, b"")
    object_store.put("nobody/household-survey/incoming/y.csv", csv_bytes([row(0)]))

    reports = run_waiting(clean_db, object_store)

    assert sorted((r["organization"], r["form"], r["status"], r["code"]) for r in reports) == [
        ("acme", "no-such-form", "failed", "unknown_form"), ("nobody", "household-survey", "failed", "unknown_form")]
    assert json.loads(object_store.get("acme/no-such-form/failed/x.csv.report.json"))["code"] == "unknown_form"
    assert object_store.head("nobody/household-survey/failed/y.csv") is not None


@pytest.mark.parametrize("content", [b"", csv_bytes([]), csv_bytes([], bom=True) + b"\n\n", xlsx_bytes([])])
def test_an_empty_file_is_a_report_with_zero_rows(client, admin_key, form, object_store, clean_db, content):
    name = "empty.xlsx" if content.startswith(b"PK") else "empty.csv"
    upload(client, admin_key, name, content)
    (report,) = run_waiting(clean_db, object_store)
    assert (report["status"], report["rows"], report["created"], report["code"]) == ("done", 0, 0, None)
    assert object_store.head(f"acme/{FORM}/processed/{name}.report.json") is not None


def test_a_submission_id_column_is_the_id_and_a_changed_row_is_a_conflict(
        client, admin_key, form, object_store, clean_db):
    ids = [str(uuid.uuid4()) for _ in range(3)]
    header = ["submission_id"] + HEADER
    upload(client, admin_key, "ids.csv", csv_bytes([row(i, submission_id=ids[i]) for i in range(3)], header))
    run_waiting(clean_db, object_store)
    assert {r["submission_id"] for r in responses_of(client, admin_key)} == set(ids)
    # Another file: the same first row, a changed second row, a new third one, and an id repeated within it.
    again = [row(0, submission_id=ids[0]), row(1, submission_id=ids[1], monthly_income="1"),
             row(9, submission_id=ids[2].upper()),  # the same id spelt in capitals, with other answers
             row(7, submission_id="not-a-uuid")]
    upload(client, admin_key, "ids2.csv", csv_bytes(again, header))

    (report,) = run_waiting(clean_db, object_store)

    assert {k: report[k] for k in ("created", "duplicate", "conflict", "invalid")} == \
        {"created": 0, "duplicate": 1, "conflict": 2, "invalid": 1}
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(5, "submission_id")]
    assert len(responses_of(client, admin_key)) == 3


def test_receipts_follow_imported_rows_unless_the_form_turns_them_off(client, admin_key, make_form, object_store,
                                                                      clean_db):
    receipt = {"phone_question": "phone", "template": "Thanks {name}"}
    make_form("with-receipts", settings={"sms_receipt": receipt})
    make_form("no-receipts", settings={"sms_receipt": receipt, "imports": {"receipts": False}})
    rows = [row(0, phone="+919876543210"), row(1, phone="+919876543211"), row(2)]
    for slug in ("with-receipts", "no-receipts"):
        upload(client, admin_key, "r.csv", csv_bytes(rows), slug=slug)
    run_waiting(clean_db, object_store)
    run_waiting(clean_db, object_store)  # a second run sends nothing more

    with connect(clean_db) as conn:
        bodies = sorted(r["body"] for r in conn.execute("SELECT body FROM sms_messages").fetchall())
    assert bodies == ["Thanks Resp 0", "Thanks Resp 1"]


def test_imports_settings_are_checked(client, admin_key):
    resp = client.post("/api/v1/forms", headers=auth(admin_key), json={
        "slug": "x", "title": "X", "questions": [{"key": "a", "type": "text"}], "settings": {"imports": {"receipts": "no"}}})
    assert resp.status_code == 422
    assert resp.get_json()["errors"][0]["field"] == "settings.imports.receipts"


def test_a_killed_import_resumes_after_its_last_committed_chunk(client, admin_key, form, object_store, clean_db):
    total = 6000
    upload(client, admin_key, "big.csv", csv_bytes([row(i) for i in range(total)]))
    with connect(clean_db) as conn:
        (import_id,) = jobs.claim_incoming(conn, object_store)
    script = ("import sys; from fieldpipe.db import connect; from fieldpipe.imports import jobs; "
              "from fieldpipe.objectstore import default_store; "
              "jobs.run_import(connect(sys.argv[1]), default_store(), sys.argv[2], chunk_rows=100)")
    child = subprocess.Popen([sys.executable, "-c", script, clean_db, str(import_id)], cwd=REPO, env=os.environ.copy())
    try:
        deadline = time.monotonic() + 60
        while True:
            with connect(clean_db) as conn:
                done = conn.execute("SELECT rows FROM imports WHERE id = %s", (import_id,)).fetchone()["rows"]
            if done >= 300 or child.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    with connect(clean_db) as conn:
        killed_at = conn.execute("SELECT rows, status FROM imports WHERE id = %s", (import_id,)).fetchone()
    assert killed_at["status"] == "running" and 0 < killed_at["rows"] < total, killed_at

    (report,) = run_waiting(clean_db, object_store)

    assert {k: report[k] for k in ("status", "rows", "created", "duplicate", "invalid")} == \
        {"status": "done", "rows": total, "created": total, "duplicate": 0, "invalid": 0}
    with connect(clean_db) as conn:
        assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == total


def test_imports_belong_to_their_organization_and_only_admins_upload(
        client, admin_key, collector_key, other_org_admin_key, form, object_store, clean_db):
    created = upload(client, admin_key, "mine.csv", csv_bytes([row(0)])).get_json()
    assert client.get(f"/api/v1/forms/{FORM}/imports/{created['id']}",
                      headers=auth(other_org_admin_key)).status_code == 404
    assert upload(client, collector_key, "c.csv", csv_bytes([row(0)])).status_code == 403
    assert upload(client, other_org_admin_key, "c.csv", csv_bytes([row(0)])).status_code == 404
    assert client.get(f"/api/v1/forms/{FORM}/imports/{uuid.uuid4()}", headers=auth(admin_key)).status_code == 404
    assert client.get(f"/api/v1/forms/{FORM}/imports/nope", headers=auth(admin_key)).status_code == 404


def test_an_upload_needs_a_file_and_a_waiting_file_of_that_name_is_not_overwritten(
        client, admin_key, form, object_store, clean_db):
    resp = client.post(f"/api/v1/forms/{FORM}/imports", headers=auth(admin_key), data={},
                       content_type="multipart/form-data")
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["errors"][0]["field"] == "file"
    assert upload(client, admin_key, "same.csv", csv_bytes([row(0)])).status_code == 202
    second = upload(client, admin_key, "same.csv", csv_bytes([row(1)]))
    assert second.status_code == 409 and second.mimetype == "application/problem+json"
    assert upload(client, admin_key, "x.csv", b"a", slug="nope").status_code == 404
    renamed = upload(client, admin_key, "../डेटा.CSV", csv_bytes([row(0)])).get_json()
    assert renamed["file"] == "upload.csv" and renamed["object_key"] == f"acme/{FORM}/incoming/upload.csv"


def test_the_template_lists_columns_labels_and_choices_and_imports_once_filled(
        client, admin_key, form, object_store, clean_db):
    resp = client.get(f"/api/v1/forms/{FORM}/imports/template", headers=auth(admin_key))
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    keys, labels, hints = list(csv.reader(io.StringIO(resp.data.decode("utf-8-sig"))))
    assert keys == ["submission_id", "submitted_at", "collector_id", "collector_phone", "form_version",
                    "name", "phone", "city", "monthly_income", "monthly_savings", "local_word"]
    assert labels[keys.index("city")] == "City" and labels[0].startswith("#")
    assert "pune | nagpur | shimla" in hints[keys.index("city")]

    xlsx = client.get(f"/api/v1/forms/{FORM}/imports/template?format=xlsx", headers=auth(admin_key))
    assert xlsx.status_code == 200
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows == [keys, labels, hints]
    sheet.append([None, "2026-11-20T10:15:00+05:30", "e1", None, None, "Asha", None, "nagpur", 10, 2, None])
    filled = io.BytesIO()
    sheet.parent.save(filled)
    upload(client, admin_key, "filled.xlsx", filled.getvalue())
    (report,) = run_waiting(clean_db, object_store)
    assert (report["created"], report["invalid"], report["rows"]) == (1, 0, 1), report
    assert client.get(f"/api/v1/forms/{FORM}/imports/template?format=pdf",
                      headers=auth(admin_key)).status_code == 422


def test_the_form_s_imports_are_listed_page_by_page(client, admin_key, other_org_admin_key, make_form,
                                                    object_store, clean_db):
    make_form(FORM)
    make_form("other-form")
    for name in ("1.csv", "2.csv", "3.csv"):
        upload(client, admin_key, name, csv_bytes([row(0)]))
    upload(client, admin_key, "elsewhere.csv", csv_bytes([row(0)]), slug="other-form")

    first = client.get(f"/api/v1/forms/{FORM}/imports?limit=2", headers=auth(admin_key)).get_json()
    second = client.get(f"/api/v1/forms/{FORM}/imports?limit=2&cursor={first['next_cursor']}",
                        headers=auth(admin_key)).get_json()

    assert [i["file"] for i in first["items"] + second["items"]] == ["1.csv", "2.csv", "3.csv"]
    assert second["next_cursor"] is None and first["items"][0]["status"] == "queued"
    bad = client.get(f"/api/v1/forms/{FORM}/imports?cursor=nope", headers=auth(admin_key))
    assert bad.status_code == 422 and bad.get_json()["errors"][0]["field"] == "cursor"
    assert client.get(f"/api/v1/forms/{FORM}/imports", headers=auth(other_org_admin_key)).status_code == 404


def test_the_demo_drops_a_sample_file_once_and_it_imports_with_one_bad_row(conn, object_store, clean_db):
    from fieldpipe.dev.demo import load_demo, load_demo_import

    load_demo(conn)
    load_demo_import(conn)
    (report,) = run_waiting(clean_db, object_store)
    load_demo_import(conn)  # a second `make up` drops nothing more

    assert {k: report[k] for k in ("status", "rows", "created", "invalid")} == \
        {"status": "done", "rows": 4, "created": 3, "invalid": 1}
    assert [(e["row"], e["column"]) for e in report["errors"]] == [(5, "city")]
    assert keys_under(object_store, "demo/household-survey/incoming/") == []


def test_an_import_leaves_the_gin_pending_lists_merged_and_the_connection_s_setting_as_it_was(
        client, admin_key, form, object_store, clean_db):
    """An import's chunks let the GIN indexes' pending lists grow past the server's limit; the last chunk's
    insert merges them, as any insert past the limit does, and the longer limit ends with each chunk's
    transaction. The smallest limit (64 kB) makes this file pass it many times over."""
    upload(client, admin_key, "many.csv", csv_bytes([row(i) for i in range(2000)]))
    with connect(clean_db) as conn:
        conn.execute("SET gin_pending_list_limit = '64kB'")
        conn.commit()
        (import_id,) = jobs.claim_incoming(conn, object_store)
        report = jobs.run_import(conn, object_store, import_id, chunk_rows=500)
        setting = conn.execute("SHOW gin_pending_list_limit").fetchone()["gin_pending_list_limit"]
        pending = {r["relname"]: r["pages"] for r in conn.execute(
            """SELECT c.relname, gin_clean_pending_list(c.oid) AS pages
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
                WHERE i.indrelid = 'responses'::regclass AND a.amname = 'gin'""")}
    assert report["created"] == 2000 and setting == "64kB"
    # What the last chunk added after its merge: less than the limit (8 pages), not the file's 2000 rows
    assert len(pending) == 2 and all(pages <= 8 for pages in pending.values()), pending

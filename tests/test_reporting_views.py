"""The `reporting` schema as a BI tool sees it: typed, masked views that the reporting role alone can read."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import zipfile

import psycopg
import pytest

from fieldpipe.sheets.layout import mask_phone
from tests.helpers import auth, submission

QUESTIONS = [
    {"key": "name", "label": "Name", "type": "text", "mask": "hash"},
    {"key": "note", "label": "Note", "type": "long_text", "mask": True},
    {"key": "phone", "label": "Phone", "type": "phone", "mask": True},
    {"key": "email", "label": "E-mail", "type": "email", "mask": "partial"},
    {"key": "income", "label": "Income", "type": "integer"},
    {"key": "share", "label": "Share", "type": "decimal"},
    {"key": "visited", "label": "Visited", "type": "date"},
    {"key": "owner", "label": "Owner", "type": "boolean"},
    {"key": "problems", "label": "Problems", "type": "multi_choice",
     "choices": [{"value": "leak"}, {"value": "dirty"}]},
]
ANSWERS = {"name": "Asha Devi", "note": "lives near the temple", "phone": "+919876543210",
           "email": "asha@example.org", "income": 20000, "share": 0.25, "visited": "2026-11-20", "owner": True,
           "problems": ["leak", "dirty"]}


@pytest.fixture
def survey(client, admin_key):
    body = {"slug": "water-survey", "title": "Water", "questions": QUESTIONS}
    assert client.post("/api/v1/forms", json=body, headers=auth(admin_key)).status_code == 201
    return body


def _as_reporting_role(conn, query: str, params=()):
    with conn.transaction():
        conn.execute("SET LOCAL ROLE fieldpipe_reporting")
        return conn.execute(query, params).fetchall()


def test_the_view_has_one_typed_masked_row_per_response_at_its_latest_revision(client, admin_key, conn, survey):
    sub = submission(answers=ANSWERS)
    assert client.post("/api/v1/forms/water-survey/responses", json=sub, headers=auth(admin_key)).status_code == 201
    edited = {**sub, "answers": {**ANSWERS, "income": 25000}}
    assert client.patch(f"/api/v1/forms/water-survey/responses/{sub['submission_id']}", json=edited,
                      headers=auth(admin_key)).status_code == 200

    rows = _as_reporting_role(conn, 'SELECT * FROM reporting."acme__water-survey"')

    assert len(rows) == 1
    row = rows[0]
    assert str(row["submission_id"]) == sub["submission_id"]
    assert row["revision"] == 2 and row["income"] == decimal.Decimal(25000)
    assert row["share"] == decimal.Decimal("0.25")
    assert row["visited"] == dt.date(2026, 11, 20) and row["owner"] is True
    assert row["problems"] == ["leak", "dirty"]
    assert row["phone"] == "+91******3210" == mask_phone("+919876543210")
    assert row["collector_phone"] == mask_phone("+919812345678")
    assert row["email"] == "a***@example.org"
    assert row["note"] is None  # `mask: true` on free text drops it
    assert len(row["name"]) == 16 and "Asha" not in row["name"]
    assert row["open_flags"] == 0


def test_no_personal_value_appears_anywhere_in_the_view(client, admin_key, conn, survey):
    assert client.post("/api/v1/forms/water-survey/responses", json=submission(answers=ANSWERS),
                       headers=auth(admin_key)).status_code == 201
    text = str(_as_reporting_role(conn, 'SELECT v::text AS row FROM reporting."acme__water-survey" v'))
    for raw in ("+919876543210", "asha@example.org", "Asha Devi", "temple", "+919812345678"):
        assert raw not in text


def test_sql_and_python_phone_masks_agree_for_every_country_code_length(conn):
    numbers = ["+14155550123", "+447911123456", "+919876543210", "+9715012345678", "+35312345678", "+88012345678"]
    sql_masks = [conn.execute("SELECT reporting.mask_phone(%s) AS m", (n,)).fetchone()["m"] for n in numbers]
    assert sql_masks == [mask_phone(n) for n in numbers]


def test_the_reporting_role_reads_the_reporting_schema_and_nothing_else(conn, survey):
    assert _as_reporting_role(conn, "SELECT count(*) AS n FROM reporting.flags")[0]["n"] == 0
    assert _as_reporting_role(conn, "SELECT count(*) AS n FROM reporting.assessment_summaries")[0]["n"] == 0
    for table in ("responses", "response_revisions", "api_keys", "forms"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            _as_reporting_role(conn, f"SELECT * FROM public.{table} LIMIT 1")


def test_a_new_form_version_adds_its_column_to_the_view(client, admin_key, conn, survey):
    questions = QUESTIONS + [{"key": "district", "label": "District", "type": "text"}]
    assert client.patch("/api/v1/forms/water-survey", json={"questions": questions},
                        headers=auth(admin_key)).status_code == 200
    sub = submission(answers={**ANSWERS, "district": "Pune"})
    assert client.post("/api/v1/forms/water-survey/responses", json=sub, headers=auth(admin_key)).status_code == 201

    row = _as_reporting_role(conn, 'SELECT * FROM reporting."acme__water-survey"')[0]
    assert row["district"] == "Pune" and row["form_version"] == 2


def test_another_organizations_form_of_the_same_slug_gets_its_own_view(client, admin_key, other_org_admin_key, conn, survey):
    body = {"slug": "water-survey", "title": "Water", "questions": QUESTIONS[:1]}
    assert client.post("/api/v1/forms", json=body, headers=auth(other_org_admin_key)).status_code == 201
    names = {r["viewname"] for r in conn.execute("SELECT viewname FROM pg_views WHERE schemaname = 'reporting'")}
    assert {"acme__water-survey", "rival__water-survey"} <= names


def test_a_mask_mode_that_does_not_fit_the_question_is_refused(client, admin_key):
    body = {"slug": "bad", "title": "Bad", "questions": [{"key": "name", "type": "text", "mask": "partial"}]}
    resp = client.post("/api/v1/forms", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert any(e["field"] == "questions[0].mask" for e in resp.get_json()["errors"])
    body["questions"][0]["mask"] = "scramble"
    assert client.post("/api/v1/forms", json=body, headers=auth(admin_key)).status_code == 422


def test_fieldpipe_reporting_refresh_rebuilds_a_lost_view_and_its_grant(db_url, conn, survey):
    import subprocess
    import sys

    conn.execute('DROP VIEW reporting."acme__water-survey"')
    out = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "reporting", "refresh"], capture_output=True,
                         text=True, check=True, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    assert "rebuilt 1 reporting view" in out.stdout
    assert _as_reporting_role(conn, 'SELECT count(*) AS n FROM reporting."acme__water-survey"')[0]["n"] == 0


def test_the_demo_forms_show_no_personal_value_to_analysts(conn, client):
    """`make up`'s demo: every name and phone its forms hold stays out of the reporting views and the masked
    CSV downloads (household survey: JSON answers; school visit: an XLSForm's `bind::fieldpipe:mask`)."""
    from fieldpipe.dev.demo import SCHOOL_VISIT_INSTANCE, YESTERDAYS_ANSWERS, load_demo
    from fieldpipe.orgs import create_key

    load_demo(conn)
    collector = create_key(conn, "demo", "collector")
    conn.commit()
    raw_values = [value for name, phone, *_ in YESTERDAYS_ANSWERS for value in (name, phone)]
    raw_values += ["+919812345678", "Meera", "+919876500011"]  # a collector's phone; the school visit's visitor
    assert all(value in SCHOOL_VISIT_INSTANCE for value in raw_values[-2:])  # the test scans what the demo holds

    views = [r["table_name"] for r in conn.execute(
        "SELECT table_name FROM information_schema.views WHERE table_schema = 'reporting' AND table_name LIKE 'demo\\_\\_%'")]
    assert {"demo__household-survey", "demo__school-visit"} <= set(views)
    seen = "".join(str(_as_reporting_role(conn, f'SELECT v::text AS row FROM reporting."{view}" v')) for view in views)
    assert "Suresh Yadav" not in seen
    assert len(_as_reporting_role(conn, 'SELECT * FROM reporting."demo__household-survey"')) == len(YESTERDAYS_ANSWERS)
    for slug in ("household-survey", "school-visit"):
        download = client.get(f"/api/v1/forms/{slug}/export.csv", headers=auth(collector))
        assert download.status_code == 200
        if download.mimetype == "application/zip":  # the school visit's classrooms repeat: one CSV per table
            with zipfile.ZipFile(io.BytesIO(download.get_data())) as book:
                seen += "".join(book.read(name).decode("utf-8-sig") for name in book.namelist())
        else:
            seen += download.get_data().decode("utf-8-sig")
    assert "GPS Dhalli" in seen and "pune" in seen  # what is not personal is still there
    for value in raw_values:
        assert value not in seen, value

"""Issue 11: input outside a value's domain is refused at the door with 422 naming the field, and stores nothing;
races and outages answer as a client can act on (no 500)."""

from __future__ import annotations

import base64
import json
import logging
import select
import threading
import uuid
from urllib.parse import quote

import psycopg
import pytest

from api import create_app
from fieldpipe import domains
from tests.helpers import auth, submission
from tests.test_api_errors import assert_problem
from tests.test_assessments_api import UDISE, lo_assessment, school  # noqa: F401  (fixture)

URL = "/api/v1/forms/household-survey/responses"
MASKED_PHONE = "+919876543210"


def count(conn, table: str = "responses") -> int:
    return conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]


def refused(resp, field: str, status: int = 422) -> dict:
    body = assert_problem(resp, status)
    if field is not None:
        assert field in [e["field"] for e in body.get("errors", [])], body
    return body


@pytest.fixture
def form(make_form):
    return make_form()


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+05:30", "9999-12-31T23:00:00-05:00",
                                   "1899-12-31T23:59:59+00:00", "9999-12-31T12:00:00+00:00"])
def test_timestamps_outside_the_domain_are_refused_everywhere(client, form, collector_key, conn, stamp):
    resp = client.post(URL, json=submission(submitted_at=stamp), headers=auth(collector_key))
    refused(resp, "submitted_at")
    batch = client.post(URL + "/batch", json={"items": [submission(submitted_at=stamp)]}, headers=auth(collector_key))
    assert batch.status_code == 200 and batch.get_json()["results"][0]["errors"][0]["field"] == "submitted_at"
    assert count(conn) == 0
    good = submission()
    assert client.post(URL, json=good, headers=auth(collector_key)).status_code == 201
    edit = client.patch(f"{URL}/{good['submission_id']}", json={"answers": good["answers"], "submitted_at": stamp},
                      headers=auth(collector_key))
    refused(edit, "submitted_at")
    assert count(conn, "response_revisions") == 1
    listing = client.get(URL, query_string={"since": stamp}, headers=auth(collector_key))
    refused(listing, "since")


def test_timestamps_at_the_edges_round_trip(client, form, collector_key):
    for stamp in ("1900-01-01T05:30:00+05:30", "9999-12-30T23:59:59+00:00"):
        body = submission(submitted_at=stamp)
        assert client.post(URL, json=body, headers=auth(collector_key)).status_code == 201
        got = client.get(f"{URL}/{body['submission_id']}", headers=auth(collector_key))
        assert got.status_code == 200
    assert client.get(URL, headers=auth(collector_key)).status_code == 200


@pytest.mark.parametrize("value", [int("9" * 401), domains.INTEGER_MAX + 1, domains.INTEGER_MIN - 1])
def test_integers_outside_the_domain_are_refused(client, form, collector_key, conn, value):
    body = submission()
    body["answers"]["monthly_income"] = value
    refused(client.post(URL, json=body, headers=auth(collector_key)), "answers.monthly_income")
    assert count(conn) == 0


def test_integers_at_the_edges_are_stored(client, form, collector_key):
    body = submission()
    body["answers"]["monthly_income"] = domains.INTEGER_MAX
    body["answers"]["monthly_savings"] = domains.INTEGER_MIN
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 201 and resp.get_json()["answers"]["monthly_income"] == domains.INTEGER_MAX


def test_decimals_outside_the_domain_are_refused(client, make_form, collector_key, conn):
    make_form("weights", questions=[{"key": "kg", "label": "Weight", "type": "decimal"}])
    url = "/api/v1/forms/weights/responses"
    for value in (1e15, -1e300, 1e400):
        body = submission(answers={"kg": value})
        raw = json.dumps(body).replace("Infinity", "1e400")
        refused(client.post(url, data=raw, content_type="application/json", headers=auth(collector_key)),
                "answers.kg")
    assert count(conn) == 0
    assert client.post(url, json=submission(answers={"kg": 999999999999999.9}),
                       headers=auth(collector_key)).status_code == 201


def send(method, url: str, body, key: str):
    """JSON as a field app sends it: ASCII with escapes, so a lone surrogate travels as \\ud800."""
    return method(url, data=json.dumps(body), content_type="application/json", headers=auth(key))


def escaped(text: str) -> str:
    """Percent-encoded as a client would put it in a URL (a lone surrogate as its UTF-8-like bytes)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


@pytest.mark.parametrize("bad", ["\u0000", "\ud800", "\u0007", "\u001b[31m", "\x85", "\uffff"])
def test_text_with_forbidden_characters_is_refused_in_every_place(client, form, admin_key, collector_key, conn,
                                                                  bad, caplog):
    caplog.set_level(logging.DEBUG)
    body = submission()
    body["answers"]["local_word"] = f"पानी {bad} {MASKED_PHONE}"
    refused(send(client.post, URL, body, collector_key), "answers.local_word")
    refused(send(client.post, URL, submission(collector={"id": f"enum{bad}7"}), collector_key), "collector.id")
    refused(send(client.post, URL + "/batch", {"items": [body]}, collector_key), "items[0].answers.local_word")
    refused(send(client.patch, "/api/v1/forms/household-survey", {"title": f"Survey{bad}"}, admin_key), "title")
    refused(send(client.post, "/api/v1/schools", {"udise": "02010100101", "name": f"GPS{bad}", "district": "Shimla",
                                                  "block": "Mashobra"}, admin_key), "name")
    if bad != "\ud800":  # a URL cannot carry a lone surrogate: its bytes decode to U+FFFD
        refused(client.get(f"{URL}?q=a{escaped(bad)}b", headers=auth(collector_key)), "q")
        refused(client.get(f"{URL}/abc{escaped(bad)}", headers=auth(collector_key)), "submission_id")
        refused(client.get(f"/api/v1/forms/x{escaped(bad)}y", headers=auth(collector_key)), "slug")
    else:
        assert_problem(client.get(f"{URL}/abc{escaped(bad)}", headers=auth(collector_key)), 404)
    assert count(conn) == 0
    assert client.get("/api/v1/forms/household-survey", headers=auth(admin_key)).get_json()["title"] == "Household Survey"
    assert MASKED_PHONE not in caplog.text


def test_tab_and_newline_are_text(client, form, collector_key):
    body = submission()
    body["answers"]["local_word"] = "line one\n\tline two"
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert resp.status_code == 201 and resp.get_json()["answers"]["local_word"] == "line one\n\tline two"


def test_text_longer_than_its_question_allows_is_refused(client, form, collector_key):
    body = submission()
    body["answers"]["local_word"] = "x" * (domains.TEXT_MAX_LENGTH + 1)
    refused(client.post(URL, json=body, headers=auth(collector_key)), "answers.local_word")
    refused(client.post(URL, json=submission(collector={"id": "c" * (domains.NAME_MAX_LENGTH + 1)}),
                        headers=auth(collector_key)), "collector.id")


def test_nan_and_infinity_anywhere_are_refused_naming_the_field(client, form, admin_key, collector_key, conn):
    raw = '{"title": "T", "settings": {"sheet": {"spreadsheet_id": "s", "cell_limit_share": NaN}}}'
    refused(client.patch("/api/v1/forms/household-survey", data=raw, content_type="application/json",
                       headers=auth(admin_key)), "settings.sheet.cell_limit_share")
    raw = json.dumps(submission()).replace('20000', '-Infinity')
    refused(client.post(URL, data=raw, content_type="application/json", headers=auth(collector_key)),
            "answers.monthly_income")
    assert count(conn) == 0


def test_deeply_nested_json_is_refused(client, form, collector_key, conn):
    for depth in (10_000, domains.JSON_MAX_DEPTH + 2):
        body = submission()
        raw = json.dumps(body)[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"
        resp = client.post(URL, data=raw, content_type="application/json", headers=auth(collector_key))
        assert_problem(resp, 422)
    assert count(conn) == 0


def cursor_of(key_json: str) -> str:
    """A cursor in the listing's own format (fieldpipe/paging.py) whose sort key a client crafted."""
    raw = '{"v":1,"l":"responses","k":%s}' % key_json
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    cursor_of('["2026-01-01T00:00:00+00:00", Infinity]'), cursor_of('["2026-01-01T00:00:00+00:00", NaN]'),
    cursor_of('["0001-01-01T00:00:00+05:30", 1]'), cursor_of('["2026-01-01T00:00:00+00:00", 99999999999999999999999]'),
    cursor_of('["2026-01-01T00:00:00", 1]'), cursor_of('["2026-01-01T00:00:00+00:00", 1.5]'),
    cursor_of("[" * 5000 + "]" * 5000), "%%%", "",
])
def test_crafted_cursors_are_refused(client, form, collector_key, cursor):
    resp = client.get(URL, query_string={"cursor": cursor}, headers=auth(collector_key))
    refused(resp, "cursor")


def test_a_cursor_handed_out_still_pages(client, form, collector_key):
    for _ in range(3):
        assert client.post(URL, json=submission(), headers=auth(collector_key)).status_code == 201
    first = client.get(URL, query_string={"limit": 2}, headers=auth(collector_key)).get_json()
    second = client.get(URL, query_string={"limit": 2, "cursor": first["next_cursor"]}, headers=auth(collector_key))
    assert second.status_code == 200 and len(second.get_json()["items"]) == 1


def test_assessment_inputs_that_answered_500(client, admin_key, collector_key, school):  # noqa: F811
    h = auth(admin_key)
    assert_problem(client.get("/api/v1/assessments/³", headers=h), 404)
    assert_problem(client.get("/api/v1/assessments/99999999999999999999999", headers=h), 404)
    assert_problem(client.get("/api/v1/classes/²/students", headers=h), 404)
    assert_problem(client.delete("/api/v1/students/¹", headers=h), 404)
    items = [{"key": {"a": 1}, "max_marks": 5}, {"key": ["x"], "max_marks": 5}]
    refused(client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], items=items), headers=h),
            "items[0].key")
    scale = [{"grade": "A", "min_percent": 80}, {"grade": "B", "min_percent": None}, {"grade": "C", "min_percent": 10}]
    refused(client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], grade_scale=scale), headers=h),
            "grade_scale[1].min_percent")
    huge = [{"key": "LO1", "max_marks": 1e300}]
    refused(client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]], items=huge), headers=h),
            "items[0].max_marks")
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]]), headers=h).get_json()
    batch = {"submission_id": str(uuid.uuid4()), "class_id": school["class_a"], "submitted_at": "2026-11-20T10:00:00+05:30",
             "collector": {"id": "t"}, "entries": [{"student_id": school["students"][0], "is_present": True,
                                                    "marks": {"LO1": {"x": 1}}}]}
    refused(client.post(f"/api/v1/assessments/{created['id']}/submissions/student", json=batch,
                        headers=auth(collector_key)), "entries[0].marks.LO1")


def test_concurrent_batches_with_the_same_new_ids_in_opposite_order_both_succeed(client, form, collector_key, conn):
    items = [submission() for _ in range(300)]
    outcomes: list[int] = []

    def post(batch):
        resp = client.application.test_client().post(URL + "/batch", json={"items": batch}, headers=auth(collector_key))
        outcomes.append(resp.status_code)

    for _ in range(3):
        for item in items:
            item["submission_id"] = str(uuid.uuid4())
        threads = [threading.Thread(target=post, args=(order,)) for order in (items, items[::-1], items[::2] + items[1::2])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert outcomes == [200] * 9
    assert count(conn) == 900


def test_a_database_that_cannot_be_reached_is_503_with_retry_after(db_url):
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "POOL_SIZE": 1, "POOL_TIMEOUT": 0.5})
    try:
        resp = app.test_client().get("/api/v1/forms", headers=auth("fpk_whatever"))
        assert_problem(resp, 503, "503.1")
        assert int(resp.headers["Retry-After"]) > 0
    finally:
        app.extensions["fieldpipe_pool"].close(timeout=0)


def test_connections_dropped_by_a_database_restart_are_replaced(client, form, collector_key, db_url):
    # the server ends every pooled connection, as a restart does
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                          WHERE datname = current_database() AND pid <> pg_backend_pid()
                            AND application_name NOT LIKE 'airflow%%'""")
    # while the pool reconnects a client may see 503 with Retry-After, never 500; then the API answers again
    for _ in range(20):
        resp = client.get(URL, headers=auth(collector_key))
        if resp.status_code == 200:
            break
        assert_problem(resp, 503, "503.1")
        assert int(resp.headers["Retry-After"]) > 0
    assert resp.status_code == 200


def test_a_pooled_connection_the_server_ended_while_idle_is_replaced_before_a_request_gets_it(db_url):
    # the pool pings a connection only when the server sent something while it sat idle (api/app.py)
    app = create_app({"DATABASE_URL": db_url, "POOL_SIZE": 1})
    pool = app.extensions["fieldpipe_pool"]
    try:
        assert app.test_client().get("/readyz").status_code == 200
        with pool.connection() as conn:
            ended_pid, socket = conn.info.backend_pid, conn.pgconn.socket
        with psycopg.connect(db_url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s, 10000)", (ended_pid,)).fetchone()[0]
        assert select.select([socket], [], [], 30)[0]  # the server's goodbye has reached the idle connection
        assert app.test_client().get("/readyz").status_code == 200  # the first request after it, not a 503
        with pool.connection() as conn:
            assert conn.info.backend_pid != ended_pid
    finally:
        pool.close()


def test_a_lost_serialization_race_is_retried_inside_the_request(db_url):
    app = create_app({"DATABASE_URL": db_url, "POOL_SIZE": 1})
    attempts = []

    from api.context import endpoint

    @app.get("/flaky")
    @endpoint()
    def flaky(conn, caller):
        attempts.append(1)
        if len(attempts) < 3:
            raise psycopg.errors.SerializationFailure("could not serialize access")
        return {"ok": True}

    from tests.conftest import _key
    try:
        resp = app.test_client().get("/flaky", headers=auth(_key(db_url, "acme-race", "collector")))
        assert resp.status_code == 200 and len(attempts) == 3
    finally:
        app.extensions["fieldpipe_pool"].close()


def test_unexpected_database_errors_log_class_and_request_id_not_data(db_url, caplog):
    app = create_app({"DATABASE_URL": db_url, "POOL_SIZE": 1})

    @app.get("/poisoned")
    def poisoned():
        raise psycopg.errors.DataError(f"invalid input near {MASKED_PHONE}")

    caplog.set_level(logging.INFO, logger="fieldpipe.api")
    try:
        resp = app.test_client().get("/poisoned", headers={"X-Request-ID": "req-42"})
        body = assert_problem(resp, 500, "500.1")
        assert body["request_id"] == "req-42" and resp.headers["X-Request-ID"] == "req-42"
        assert "DataError" in caplog.text and "req-42" in caplog.text
        assert MASKED_PHONE not in caplog.text
    finally:
        app.extensions["fieldpipe_pool"].close()


def test_xform_types_hold_the_same_domains(client, make_form, collector_key, conn):
    make_form("visits", questions=[{"key": "seen_at", "label": "Seen at", "type": "datetime"},
                                   {"key": "where", "label": "Where", "type": "geopoint"}])
    url = "/api/v1/forms/visits/responses"
    refused(client.post(url, json=submission(answers={"seen_at": "0001-01-01T00:00:00+05:30"}),
                        headers=auth(collector_key)), "answers.seen_at")
    refused(client.post(url, json=submission(answers={"where": {"latitude": 1, "longitude": 2,
                                                                "altitude": int("9" * 401)}}),
                        headers=auth(collector_key)), "answers.where")
    assert count(conn) == 0
    assert client.post(url, json=submission(answers={"seen_at": "2026-11-20T10:00:00+05:30"}),
                       headers=auth(collector_key)).status_code == 201

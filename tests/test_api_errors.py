"""Every error a client can see is application/problem+json, with no HTML and no stack trace."""

import io

import pytest

from api import create_app
from tests.helpers import auth, submission

URL = "/api/v1/forms/household-survey/responses"


def assert_problem(resp, status, code=None):
    assert resp.status_code == status, resp.data
    assert resp.mimetype == "application/problem+json"
    body = resp.get_json()
    assert body["status"] == status and body["title"] and body["type"].startswith("/problems/")
    if code:
        assert body["code"] == code
    assert b"Traceback" not in resp.data and b"<html" not in resp.data.lower()
    return body


def test_missing_and_wrong_keys(client, make_form):
    make_form()
    assert_problem(client.get("/api/v1/forms"), 401, "401.1")
    assert_problem(client.get("/api/v1/forms", headers=auth("fpk_not-a-real-key")), 401, "401.1")


def test_malformed_json_is_400_and_stores_nothing(client, make_form, collector_key, conn):
    make_form()
    resp = client.post(URL, data=b'{"submission_id": ', content_type="application/json", headers=auth(collector_key))
    assert_problem(resp, 400, "400.1")
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 0


def test_body_over_the_limit_is_413(app, client, make_form, collector_key, conn):
    make_form()
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = submission()
    body["answers"]["local_word"] = "x" * (limit + 10)
    resp = client.post(URL, json=body, headers=auth(collector_key))
    assert_problem(resp, 413, "413.1")
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 0


def test_unknown_form_route_and_method(client, collector_key):
    assert_problem(client.get("/api/v1/forms/nope", headers=auth(collector_key)), 404, "404.1")
    assert_problem(client.get("/no/such/route"), 404)
    assert_problem(client.delete("/api/v1/forms"), 405)


def test_wrong_content_type_is_415(client, make_form, collector_key):
    make_form()
    resp = client.post(URL, data=io.BytesIO(b"a=b"), content_type="application/x-www-form-urlencoded",
                       headers=auth(collector_key))
    assert_problem(resp, 415)


def test_unexpected_errors_do_not_leak(db_url):
    app = create_app({"DATABASE_URL": db_url, "POOL_SIZE": 1})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    resp = app.test_client().get("/boom")
    body = assert_problem(resp, 500, "500.1")
    assert "secret" not in resp.get_data(as_text=True) and "detail" not in body
    app.extensions["fieldpipe_pool"].close()


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready"}


def test_readiness_fails_when_database_is_unreachable(db_url):
    app = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "POOL_SIZE": 1})
    assert_problem(app.test_client().get("/readyz"), 503, "503.1")
    assert app.test_client().get("/healthz").status_code == 200
    app.extensions["fieldpipe_pool"].close(timeout=0)

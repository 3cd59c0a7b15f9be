"""A student's answer takes a path around Flask (api/answer_fast_path.py) and must answer, count and log as
the Flask route does; every other request, and every answer it cannot settle, goes through Flask unchanged."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import jwt
import pytest
from flask import request
from werkzeug.test import Client

from api import create_app
from fieldpipe.assessments import signin
from tests.helpers import auth
from tests.test_assessments_api import school  # noqa: F401 (fixture)
from tests.test_exams import answer, count, exam, slips, tokens  # noqa: F401 (fixtures)
from tests.test_operations import metric

ROUTE = "/api/v1/students/<student_id>/exams/<assessment_id>/answers"


@pytest.fixture
def watched(clean_db):
    """An app of its own (bodies up to 1 KiB), and the requests that reached Flask's request handling in it."""
    app = create_app({"DATABASE_URL": clean_db, "TESTING": True, "POOL_SIZE": 2, "MAX_CONTENT_LENGTH": 1024})
    reached: list[str] = []

    @app.before_request
    def note() -> None:
        reached.append(f"{request.method} {request.full_path.rstrip('?')}")

    yield app, reached
    app.extensions["fieldpipe_pool"].close()


def test_a_students_answer_is_stored_around_flask_and_every_refusal_is_flasks(watched, conn, exam, tokens,  # noqa: F811
                                                                              admin_key):
    app, reached = watched
    client = app.test_client()
    me, other = tokens["1"], tokens["2"]
    path = f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers"
    answer_id = str(uuid.uuid4())
    first = answer(client, me, exam["id"], "q1", "a", answer_id)
    assert first.status_code == 201, first.get_json()
    retry = answer(client, me, exam["id"], "q1", "a", answer_id)
    assert (retry.status_code, retry.get_json()) == (200, first.get_json())
    assert reached == [] and count(conn) == 1

    good = {"answer_id": str(uuid.uuid4()), "question": "q2", "answer": "a"}
    refused = [
        (answer(client, me, exam["id"], "q9", "a"), 422),  # not a question of the exam
        (answer(client, me, exam["id"], "q1", "a", student_id=other["student"]["id"]), 403),
        (client.post(path, json=good, headers=auth(admin_key)), 403),  # an API key
        (client.post(path, json=good, headers=auth(me["token"] + "x")), 401),
        (client.post(path, json=good), 401),
        (client.post(path + "?draft=1", json=good, headers=auth(me["token"])), 422),
        (client.post(path, data=json.dumps(good), content_type="text/plain", headers=auth(me["token"])), 415),
        (client.post(path, data=b'{"answer_id": ', content_type="application/json", headers=auth(me["token"])), 400),
        (client.post(path, json={**good, "answer": "a\x00"}, headers=auth(me["token"])), 422),
        (answer(client, me, exam["id"], "q1", "c", answer_id), 409),  # the same answer_id, another choice
        (client.post(path, data=json.dumps(good) + " " * 1024, content_type="application/json",
                     headers=auth(me["token"])), 413),
    ]
    assert [resp.status_code for resp, _ in refused] == [status for _, status in refused]
    assert all(resp.mimetype == "application/problem+json" for resp, _ in refused)
    assert len(reached) == len(refused) and reached[5] == f"POST {path}?draft=1"
    assert count(conn) == 1
    # an exam id too long to be a row id is Flask's to refuse, as is a GET of the same path
    assert client.post(f"/api/v1/students/{me['student']['id']}/exams/{'9' * 19}/answers", json=good,
                       headers=auth(me["token"])).status_code == 404
    assert client.get(path, headers=auth(me["token"])).status_code == 200
    assert reached[-2:] == [f"POST /api/v1/students/{me['student']['id']}/exams/{'9' * 19}/answers", f"GET {path}"]


def _without_ids(body: bytes) -> bytes:
    return re.sub(rb'"(answer_id|received_at)":"[^"]*"', b"", body)


def test_an_answer_around_flask_answers_counts_and_logs_as_flask_would(app, client, exam, tokens, caplog):  # noqa: F811
    me = tokens["1"]
    flask_only = Client(app.wsgi_app.flask)
    before = client.get("/metrics").get_data(as_text=True)
    with caplog.at_level(logging.INFO, logger="fieldpipe.access"):
        answers = [
            via.post(f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers",
                     json={"answer_id": str(uuid.uuid4()), "question": "q2", "answer": "b"},
                     headers={**auth(me["token"]), "X-Request-ID": f"trace-{n}"},
                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
            for n, via in enumerate((client, flask_only))]
    fast, slow = answers
    assert fast.status_code == slow.status_code == 201
    assert sorted(fast.headers.keys()) == sorted(slow.headers.keys()) == ["Content-Length", "Content-Type",
                                                                          "X-Request-ID"]
    assert fast.headers["Content-Type"] == slow.headers["Content-Type"] == "application/json"
    assert (fast.headers["X-Request-ID"], slow.headers["X-Request-ID"]) == ("trace-0", "trace-1")
    assert _without_ids(fast.data) == _without_ids(slow.data) and fast.data.endswith(b"}\n")
    assert int(fast.headers["Content-Length"]) == len(fast.data)

    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "fieldpipe.access"
             and json.loads(r.getMessage())["request_id"].startswith("trace-")]
    assert [line["request_id"] for line in lines] == ["trace-0", "trace-1"]
    for line, resp in zip(lines, answers):
        assert set(line) == {"ts", "request_id", "method", "route", "path", "status", "duration_ms", "bytes", "remote"}
        assert (line["method"], line["route"], line["status"], line["bytes"]) == ("POST", ROUTE, 201, len(resp.data))
        assert line["path"] == f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", line["ts"]) and line["remote"] == "127.0.0.1"

    after = client.get("/metrics").get_data(as_text=True)
    made = metric(after, "fieldpipe_http_requests_total", method="POST", route=ROUTE, status="201") \
        - metric(before, "fieldpipe_http_requests_total", method="POST", route=ROUTE, status="201")
    timed = metric(after, "fieldpipe_http_request_duration_seconds_count", method="POST", route=ROUTE) \
        - metric(before, "fieldpipe_http_request_duration_seconds_count", method="POST", route=ROUTE)
    assert made == timed == 2


def test_a_request_id_that_is_not_a_plain_token_is_replaced_around_flask_too(client, exam, tokens):  # noqa: F811
    me = tokens["1"]
    resp = client.post(f"/api/v1/students/{me['student']['id']}/exams/{exam['id']}/answers",
                       json={"answer_id": str(uuid.uuid4()), "question": "q1", "answer": "b"},
                       headers={**auth(me["token"]), "X-Request-ID": "two words"})
    assert resp.status_code == 201 and re.fullmatch(r"[0-9a-f]{32}", resp.headers["X-Request-ID"])


def test_an_answer_the_server_cannot_check_is_a_problem_not_a_crash(client, conn, exam, tokens, monkeypatch):  # noqa: F811
    """In production without a key to check student tokens, an answer is 503 problem+json and stores nothing."""
    claims = jwt.decode(tokens["1"]["token"], options={"verify_signature": False})
    # a token no process has checked yet (the tokens of earlier tests can be the same bytes, and remembered)
    me = {**tokens["1"], "token": jwt.encode({**claims, "iat": claims["iat"] - 7}, signin.DEVELOPMENT_KEY,
                                             algorithm=signin.TOKEN_ALGORITHM)}
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    monkeypatch.delenv("FIELDPIPE_STUDENT_TOKEN_KEY", raising=False)
    monkeypatch.delenv("FIELDPIPE_SECRET_KEY", raising=False)
    resp = answer(client, me, exam["id"], "q1", "b")
    assert (resp.status_code, resp.mimetype) == (503, "application/problem+json")
    assert resp.get_json()["detail"] == "FIELDPIPE_STUDENT_TOKEN_KEY is not set, so student tokens cannot be signed"
    assert count(conn) == 0


def test_an_answer_waits_for_a_connection_once_when_none_is_free(clean_db, exam, tokens):  # noqa: F811
    """The path around Flask takes only a connection free within 50 ms; otherwise Flask waits for one, for the
    pool's timeout (here 2 s), and answers 503 when none comes: one wait, not two."""
    app = create_app({"DATABASE_URL": clean_db, "TESTING": True, "POOL_SIZE": 1, "POOL_TIMEOUT": 2})
    pool = app.extensions["fieldpipe_pool"]
    try:
        with pool.connection():  # the only connection, busy
            started = time.monotonic()
            resp = answer(app.test_client(), tokens["1"], exam["id"], "q1", "b")
            waited = time.monotonic() - started
        assert (resp.status_code, resp.get_json()["code"]) == (503, "503.1")
        assert 2 <= waited < 3.5
        assert answer(app.test_client(), tokens["1"], exam["id"], "q1", "b").status_code == 201  # free again
    finally:
        pool.close()

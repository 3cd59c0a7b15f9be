"""A student's answer stored without Flask's per-request machinery (issue 25).

Students answering an exam together are the API's busiest write: `exam_answers_ingest` asks for 1,500 answers/s
from 200 students on this 2-core machine, where Flask's request context, hooks and response handling cost
about a third of an answer's CPU. So an answer that needs nothing else (POST of a JSON answer, no query string,
a valid student token, numeric ids) is stored here, by the same `exams.post_answer`, and counted and
access-logged as every request is. Every other request, and every answer this path cannot settle (a refusal,
an unknown token, a malformed body, no database connection free soon, a database error), goes to Flask as
it came: each problem the route can answer is made in one place, and the answer's INSERT is idempotent, so
trying again there stores nothing twice.
"""

from __future__ import annotations

import io
import logging
import re
import time
from typing import Callable, Iterable

from flask import Flask
from psycopg_pool import PoolTimeout
from werkzeug.http import HTTP_STATUS_CODES

from api import metrics
from api.context import bearer_credential, borrowed_connection
from api.errors import request_id_from
from fieldpipe.assessments import exams, signin
from fieldpipe.domains import body_problems, parse_json
from fieldpipe.problems import Problem

log = logging.getLogger("fieldpipe.api")

ENDPOINT = "exams.post_answer"
# How long an answer here waits for a pooled connection before it goes to Flask, which waits the pool's timeout:
# a busy pool costs an answer this much more, not a second timeout.
CONNECTION_WAIT = 0.05
STATUS_LINES = {status: f"{status} {HTTP_STATUS_CODES[status].upper()}" for status in (200, 201)}  # as werkzeug's


class AnswerFastPath:
    """WSGI middleware in front of Flask's `wsgi_app` (installed by `create_app`, so tests go through it too)."""

    def __init__(self, app: Flask):
        self.app = app
        self.flask = app.wsgi_app
        self.pool = app.extensions["fieldpipe_pool"]
        self.rule = next(app.url_map.iter_rules(ENDPOINT)).rule
        # the rule's path with its parameters as ids: anything else is Flask's to match or refuse
        self.path = re.compile("([0-9]{1,18})".join(map(re.escape, re.split(r"<[^>]+>", self.rule))))

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        started = time.perf_counter()
        match = self.path.fullmatch(environ.get("PATH_INFO", ""))
        if match is None or environ["REQUEST_METHOD"] != "POST" or environ.get("QUERY_STRING"):
            return self.flask(environ, start_response)
        try:
            stored = self._answer(environ, match.groups())
        except Problem:  # refused: Flask answers why
            stored = None
        except PoolTimeout:  # no connection free soon: Flask waits for one, as long as any request does
            stored = None
        except Exception as exc:
            log.warning("an answer went to Flask after %s in the fast path", type(exc).__name__)
            stored = None
        if stored is None:
            return self.flask(environ, start_response)
        receipt, created = stored
        # the bytes and headers Flask would send: its compact JSON and a request id
        answered = f"{self.app.json.dumps(receipt, separators=(',', ':'))}\n".encode()
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID", ""))
        status = 201 if created else 200
        start_response(STATUS_LINES[status], [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(answered))), ("X-Request-ID", request_id)])
        metrics.observe("POST", self.rule, environ["PATH_INFO"], status, time.perf_counter() - started, request_id,
                        len(answered), environ.get("REMOTE_ADDR"))
        return [answered]

    def _answer(self, environ: dict, ids: tuple[str, str]) -> tuple[dict, bool] | None:
        """(receipt, created) for a plain answer of a valid student token; None for anything else."""
        token = bearer_credential(environ.get("HTTP_AUTHORIZATION", "")) or ""
        student = signin.verify_token(token) if signin.looks_like_token(token) else None
        body = self._body(environ) if student is not None else None
        if body is None:
            return None
        try:
            payload = parse_json(body)
        except ValueError:  # malformed, or nested too deep (BodyProblem): Flask says which
            return None
        if next(body_problems(payload), None) is not None:
            return None
        with borrowed_connection(self.pool, autocommit=True, timeout=CONNECTION_WAIT) as conn:
            return exams.post_answer(conn, student, *ids, payload)

    def _body(self, environ: dict) -> bytes | None:
        """The JSON body, read once and left readable for Flask; None when it is not plain JSON of a known
        length within the limit (Flask refuses those)."""
        if environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower() != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not length.isdigit() or int(length) > self.app.config["MAX_CONTENT_LENGTH"]:
            return None
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(body)
        return body

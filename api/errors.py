"""One place that turns every failure into an `application/problem+json` answer; no HTML, no stack traces.

Every request carries an id (the client's `X-Request-ID` when it is a plain token, else a new one), echoed
in the answer's header, in every problem body (`request_id`) and in the access log, and logged with every error. Logs name the error's class, the request id and the
route, never the error's message: a database error quotes the submitted data it choked on.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
import uuid

import psycopg
from flask import Flask, Response, g, request
from psycopg_pool import PoolTimeout
from werkzeug.exceptions import HTTPException

from fieldpipe.domains import QUERY_MAX_LENGTH, text_problem
from fieldpipe.problems import FieldError, Problem, invalid

log = logging.getLogger("fieldpipe.api")

HTTP_TO_PROBLEM = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                   405: "method-not-allowed", 413: "payload-too-large", 414: "uri-too-long",
                   415: "unsupported-media-type", 431: "headers-too-large"}
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
RETRY_AFTER_SECONDS = 5  # what a client waits before retrying when the database is unavailable


def request_id() -> str:
    if "request_id" not in g:
        g.request_id = request_id_from(request.headers.get("X-Request-ID", ""))
    return g.request_id


def request_id_from(given: str) -> str:
    """The client's `X-Request-ID` when it is a plain token, else a new id."""
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def problem_response(problem: Problem) -> Response:
    # backslashreplace: text that cannot be UTF-8 (a lone surrogate) is written as its JSON escape
    body = json.dumps({**problem.as_dict(instance=request.path), "request_id": request_id()},
                      ensure_ascii=False, default=str)
    response = Response(body.encode("utf-8", "backslashreplace"), status=problem.status,
                        mimetype="application/problem+json")
    if problem.status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def check_url() -> None:
    """Path parameters and query parameters are text like any other: refused with 422 naming them."""
    errors = []
    for source, values in (("path", (request.view_args or {}).items()), ("query", request.args.items(multi=True))):
        for name, value in values:
            if not isinstance(value, str):
                continue
            problem = text_problem(name, QUERY_MAX_LENGTH) or text_problem(value, QUERY_MAX_LENGTH)
            if problem:
                safe_name = name.encode("unicode_escape").decode()[:40]
                errors.append(FieldError(safe_name, problem[0], f"{source} parameter {problem[1]}"))
    if errors:
        raise invalid(errors)


def register(app: Flask) -> None:
    app.before_request(check_url)

    @app.after_request
    def _tag(response: Response) -> Response:
        response.headers["X-Request-ID"] = request_id()
        return response

    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        slug = HTTP_TO_PROBLEM.get(exc.code or 500, "bad-request")
        detail = None if exc.code == 404 else exc.description
        if exc.code == 413:
            detail = f"the body is larger than {request.max_content_length} bytes"
        response = problem_response(Problem(slug, detail))
        if exc.code == 405 and isinstance(getattr(exc, "valid_methods", None), (list, tuple)):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    def _unavailable(exc: Exception):
        log.error("database unavailable (%s) on %s %s request_id=%s", type(exc).__name__, request.method,
                  request.url_rule, request_id())
        return problem_response(Problem("unavailable", "the database cannot be reached; retry later"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The stack without the message: enough to find the bug, nothing the client sent.
        where = "".join(traceback.format_tb(exc.__traceback__)[-6:])
        log.error("unhandled %s.%s on %s %s request_id=%s\n%s", type(exc).__module__, type(exc).__name__,
                  request.method, request.url_rule, request_id(), where)
        return problem_response(Problem("internal-error"))

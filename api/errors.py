"""One place that turns every failure into an `application/problem+json` answer; no HTML, no stack traces."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from fieldpipe.problems import Problem

log = logging.getLogger("fieldpipe.api")

HTTP_TO_PROBLEM = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                   405: "method-not-allowed", 413: "payload-too-large", 415: "unsupported-media-type"}


def problem_response(problem: Problem) -> Response:
    body = json.dumps(problem.as_dict(instance=request.path), ensure_ascii=False, default=str)
    return Response(body, status=problem.status, mimetype="application/problem+json")


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(problem: Problem):
        return problem_response(problem)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        slug = HTTP_TO_PROBLEM.get(exc.code or 500, "bad-request")
        detail = None if exc.code == 404 else exc.description
        if exc.code == 413:
            detail = f"the body is larger than {app.config['MAX_CONTENT_LENGTH']} bytes"
        response = problem_response(Problem(slug, detail))
        if exc.code == 405 and isinstance(getattr(exc, "valid_methods", None), (list, tuple)):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(Problem("internal-error"))

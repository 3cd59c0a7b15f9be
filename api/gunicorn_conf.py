"""gunicorn settings for the API, loaded through ./gunicorn.conf.py (gunicorn's default config file).

gunicorn answers a request it cannot parse by itself, before the app sees it, and in HTML: a request line
longer than `limit_request_line` (414), too many or too large headers (431), any other malformed request
(400). The hook below makes those answers `application/problem+json` with the catalogue's codes, like
every other error of the API. Errors in answers the app made keep gunicorn's own handling.

Each worker writes one JSON access-log line per request to standard output (api/metrics.py; run gunicorn
without `--access-logfile`), and with PROMETHEUS_MULTIPROC_DIR set the workers share their metrics through
files there: an exited worker's live gauges are dropped (`child_exit`).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import sys

from gunicorn import util
from gunicorn.http import errors as http_errors

from fieldpipe.config import metrics_multiprocess_dir
from fieldpipe.problems import Problem

# How the API is served wherever gunicorn runs it (make up, docker compose, the image, `make bench`), so the
# benchmarks measure what users get. Threads overlap requests' database round trips (a commit waits for the
# disk); several processes keep both cores busy, as one process runs Python on one core at a time. On this
# 2-core machine 4 x 4 took 1,147 student answers/s against 838/s for 2 x 4 (`exam_answers_ingest`, load 4-10;
# README, "Answers at speed", has the figures).
worker_class = "gthread"
workers = 4
threads = 4

# Errors in what the app answered, or in gunicorn's own setup: gunicorn's handling stays.
LEFT_TO_GUNICORN = (http_errors.InvalidResponseHeader, http_errors.InvalidResponseHeaderName,
                    http_errors.ConfigurationProblem, http_errors.UnsupportedTransferCoding)


def problem_bytes(exc: Exception) -> bytes | None:
    """The whole HTTP answer for a request gunicorn refused, or None to leave it to gunicorn."""
    if isinstance(exc, LEFT_TO_GUNICORN) or not isinstance(exc, http_errors.ParseException):
        return None
    if isinstance(exc, http_errors.LimitRequestLine):
        status_line, slug = "414 URI Too Long", "uri-too-long"
    elif isinstance(exc, http_errors.LimitRequestHeaders):
        status_line, slug = "431 Request Header Fields Too Large", "headers-too-large"
    else:
        status_line, slug = "400 Bad Request", "bad-request"
    body = json.dumps(Problem(slug, f"the request could not be read: {type(exc).__name__}").as_dict()).encode()
    head = (f"HTTP/1.1 {status_line}\r\nConnection: close\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def json_access_log() -> None:
    """The access log's lines are JSON already: print them as they are, one per line."""
    access = logging.getLogger("fieldpipe.access")
    if not access.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False


def on_starting(server) -> None:
    """Counts left by an earlier run would be added to this one's: start from an empty directory."""
    directory = metrics_multiprocess_dir()
    if directory:
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker) -> None:
    if metrics_multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker) -> None:
    """Wrap the worker's error handler (gunicorn/workers/base.py: handle_error) for parse errors; JSON access log;
    the app loaded, its objects are frozen: they live as long as the worker, and the garbage collector's full
    passes (about 90 ms each over them) then skip them."""
    json_access_log()
    gc.freeze()
    original = worker.handle_error

    def handle_error(req, client, addr, exc):
        answer = problem_bytes(exc)
        if answer is None:
            return original(req, client, addr, exc)
        worker.log.warning("refused an unreadable request from %s: %s", (addr or ("",))[0], type(exc).__name__)
        try:
            util.write_nonblock(client, answer)
        except OSError:
            worker.log.debug("could not send the error answer")

    worker.handle_error = handle_error

"""Requests gunicorn refuses before the app sees them are answered in problem+json too (api/gunicorn_conf.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from fieldpipe.config import REPO_ROOT as REPO
from fieldpipe.dev.embedded_db import free_port
from fieldpipe.problems import CATALOGUE


@pytest.fixture(scope="module")
def gunicorn_api(db_url):
    port = free_port()
    process = subprocess.Popen(
        # as make up and the image run it: no -c, gunicorn finds ./gunicorn.conf.py in the repository
        [sys.executable, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "2"],
        env={**os.environ, "DATABASE_URL": db_url}, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while b"200 OK" not in raw_request(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    yield port
    process.terminate()
    process.wait(timeout=30)


def raw_request(port: int, data: bytes) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in b"".join(chunks):
                    break
            return b"".join(chunks)
    except OSError:
        return b""


def problem(answer: bytes, status: int) -> dict:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"Content-Type: application/problem+json" in head and b"<html" not in answer.lower()
    parsed = json.loads(body)
    assert parsed["status"] == status and parsed["code"] == CATALOGUE[parsed["type"].rsplit("/", 1)[1]].code
    return parsed


def test_a_request_line_over_the_limit_is_414_problem_json(gunicorn_api):
    answer = raw_request(gunicorn_api, b"GET /api/v1/forms?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert problem(answer, 414)["code"] == "414.1"


def test_too_many_or_too_large_headers_are_431_problem_json(gunicorn_api):
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    assert problem(raw_request(gunicorn_api, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n"), 431)["code"] == "431.1"
    large = b"X-Big: " + b"v" * 9000 + b"\r\n"
    assert problem(raw_request(gunicorn_api, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + large + b"\r\n"), 431)


def test_a_malformed_request_is_400_problem_json(gunicorn_api):
    assert problem(raw_request(gunicorn_api, b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n"), 400)["code"] == "400.2"

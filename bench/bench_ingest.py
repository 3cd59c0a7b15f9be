"""`ingest_single` and `ingest_batch`: accepted submissions per second through gunicorn on this machine.

ingest_single: 16 concurrent keep-alive clients posting one submission each request; the baseline is the
naive version (one ORM row per answer, bench/naive_ingest.py) under the same load.
ingest_batch: batches of 1,000 submissions of 10 answers; the baseline is the single endpoint's rate.
ingest_batch_copy_fraction (issue 23): ingest_batch divided by PostgreSQL's COPY of the same rows (responses and
their first revisions, as the batch endpoint stores them) into the same tables, with the same indexes, in the
same run: how close the API's batch path comes to the database's own limit.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.common import admin_key, figure, throwaway_database
from bench.loadgen import run_load
from bench.naive_ingest import create_tables
from fieldpipe.db import connect
from fieldpipe.dev.embedded_db import free_port

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", 20))
QUESTIONS = [
    {"key": "name", "type": "text", "required": True},
    {"key": "phone", "type": "phone"},
    {"key": "city", "type": "single_choice", "choices": ["pune", "nagpur", "shimla"]},
    {"key": "monthly_income", "type": "integer"},
    {"key": "monthly_savings", "type": "integer"},
    {"key": "local_word", "type": "text"},
    {"key": "age", "type": "integer"},
    {"key": "visited_on", "type": "date"},
    {"key": "has_tap", "type": "boolean"},
    {"key": "notes", "type": "long_text"},
]


def make_submission() -> dict:
    """Respondents' phones differ (as in the field); the collector's repeats across their submissions."""
    return {"submission_id": str(uuid.uuid4()), "submitted_at": "2026-11-20T10:15:00+05:30",
            "collector": {"id": "enum-7", "phone": "+919812345678"},
            "answers": {"name": "Asha", "phone": f"+9198{random.randrange(10**8):08d}", "city": "pune", "monthly_income": 20000,
                        "monthly_savings": 5000, "local_word": "पानी", "age": 41, "visited_on": "2026-11-19",
                        "has_tap": True, "notes": "कुआँ गाँव के बाहर है"}}


def gunicorn_command(app_path: str, port: int, *settings: str) -> list[str]:
    return ["gunicorn", app_path, "--bind", f"127.0.0.1:{port}", "--keep-alive", "30", "--log-level", "warning",
            *settings]


@contextmanager
def gunicorn(app_path: str, database_url: str, *settings: str):
    """`app_path` served as `make up` serves the API: workers, threads and hooks from ./gunicorn.conf.py (it is
    gunicorn's working directory), metrics shared between the workers through files. `settings`: gunicorn
    options that override the configuration (e.g. "--workers", "2")."""
    port = free_port()
    metrics_dir = tempfile.mkdtemp(prefix="fieldpipe-bench-metrics-")
    env = {**os.environ, "DATABASE_URL": database_url, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    proc = subprocess.Popen([sys.executable, "-m", *gunicorn_command(app_path, port, *settings)],
                            cwd=REPO, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except (requests.ConnectionError, requests.Timeout):  # a busy machine answers slowly at first
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{app_path} did not start")
                time.sleep(0.3)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(metrics_dir, ignore_errors=True)


def pregenerated(path: str, bodies: list[bytes]):
    """Bodies are built before the clock starts, so the load generator spends its share of the cores on sending."""
    remaining = iter(bodies)

    def request() -> tuple[str, bytes]:
        return path, next(remaining)

    return request


def single_load(port: int, path: str, key: str):
    bodies = [json.dumps(make_submission(), ensure_ascii=False).encode() for _ in range(int(SECONDS * 2000))]
    return run_load("127.0.0.1", port, pregenerated(path, bodies), clients=16, seconds=SECONDS,
                    headers={"Authorization": f"Bearer {key}"}, max_requests=len(bodies) - 16)


def run() -> dict:
    with throwaway_database() as url:
        key = admin_key(url)
        headers = {"Authorization": f"Bearer {key}"}
        with gunicorn("api.wsgi:app", url) as port:
            for slug in ("bench", "bench-batch", "bench-copy"):
                form = {"slug": slug, "title": "Bench", "questions": QUESTIONS}
                requests.post(f"http://127.0.0.1:{port}/api/v1/forms", json=form, headers=headers).raise_for_status()
            single = single_load(port, "/api/v1/forms/bench/responses", key)
            batch_size = 1000
            batches = [json.dumps({"items": [make_submission() for _ in range(batch_size)]}, ensure_ascii=False).encode()
                       for _ in range(int(SECONDS * 30))]
            batch = run_load("127.0.0.1", port, pregenerated("/api/v1/forms/bench-batch/responses/batch", batches),
                             clients=3, seconds=SECONDS, headers=headers, max_requests=len(batches) - 3)
        copy_rate = copy_same_rows(url, "bench-batch", "bench-copy")
        create_tables(url)
        with gunicorn("bench.naive_ingest:app", url) as naive_port:
            naive = single_load(naive_port, "/naive/responses", key)

    assert set(single.statuses) == {201}, single.statuses
    assert set(batch.statuses) == {200}, batch.statuses
    single_rate = single.rate
    print(f"   single: {single.requests} in {single.seconds:.1f} s, p99 {single.percentile(0.99) * 1000:.1f} ms; "
          f"naive: {naive.rate:.0f}/s p99 {naive.percentile(0.99) * 1000:.1f} ms; "
          f"batch: {batch.requests} requests of {batch_size}, p99 {batch.percentile(0.99) * 1000:.0f} ms; "
          f"COPY of the same rows: {copy_rate:.0f}/s", flush=True)
    return {
        "ingest_single": figure(single_rate, "submissions/s", naive.rate, ">= 800/s with p99 <= 50 ms at 16 clients",
                                p99_ms=round(single.percentile(0.99) * 1000, 1),
                                baseline_p99_ms=round(naive.percentile(0.99) * 1000, 1)),
        "ingest_batch": figure(batch.rate * batch_size, "responses/s", single_rate, ">= 20,000/s"),
        "ingest_batch_copy_fraction": figure(batch.rate * batch_size / copy_rate, "fraction of COPY", 1.0, ">= 0.5",
                                             copy_rows_per_s=round(copy_rate), load_average=[round(x, 1) for x in os.getloadavg()]),
    }


RESPONSE_COLUMNS = ("id, form_id, form_version_id, submission_id, collector_id, collector_phone, submitted_at, "
                    "received_at, updated_at, answers, content_hash, search_words")
REVISION_COLUMNS = "response_id, revision, form_version_id, collector_id, collector_phone, submitted_at, answers, created_at"


def copy_same_rows(url: str, source_slug: str, target_slug: str) -> float:
    """Rows per second of COPY writing the responses the batch endpoint stored for `source_slug` (and their
    first revisions) again, as `target_slug`'s, into the same tables; ids are reserved beforehand, as
    COPY of rows made elsewhere would carry them."""
    with connect(url) as conn:
        forms_ = {r["slug"]: r["id"] for r in conn.execute("SELECT id, slug FROM forms WHERE slug = ANY(%s)",
                                                            ([source_slug, target_slug],))}
        count = conn.execute("SELECT count(*) AS n FROM responses WHERE form_id = %s", (forms_[source_slug],)).fetchone()["n"]
        first = conn.execute("SELECT setval(pg_get_serial_sequence('responses', 'id'), "
                             "nextval(pg_get_serial_sequence('responses', 'id')) + %s) - %s AS first",
                             (count, count - 1)).fetchone()["first"]
        renumbered = f"""SELECT {first} - 1 + row_number() OVER (ORDER BY r.id) AS new_id, r.*
                           FROM responses r WHERE r.form_id = {forms_[source_slug]}"""
        dumps = {}
        for table, select in (
                ("responses", f"""SELECT new_id, {forms_[target_slug]}, form_version_id, submission_id, collector_id,
                                         collector_phone, submitted_at, received_at, updated_at, answers, content_hash,
                                         search_words FROM ({renumbered}) r"""),
                ("response_revisions", f"""SELECT new_id, 1, form_version_id, collector_id, collector_phone,
                                                  submitted_at, answers, received_at FROM ({renumbered}) r""")):
            with conn.cursor().copy(f"COPY ({select}) TO STDOUT") as copy:
                dumps[table] = b"".join(bytes(chunk) for chunk in copy)
        conn.commit()
        started = time.perf_counter()
        for table, columns in (("responses", RESPONSE_COLUMNS), ("response_revisions", REVISION_COLUMNS)):
            with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write(dumps[table])
        conn.commit()
        return count / (time.perf_counter() - started)

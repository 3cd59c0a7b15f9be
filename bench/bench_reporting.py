"""Figures `archive_day` and `export_csv`: one day of 1,000,000 responses of 20 questions.

Data: one form of 20 questions (text, phone and email masked, numbers, dates, choices), 1,000,000 responses
received on one day, made in the database with generate_series in the real schema.

`archive_day`: `reporting.archive.archive_day` for that day, what the `archive_responses` DAG's task runs:
the masked SELECT streamed into a Parquet writer and put in moto's S3 server on loopback. It runs in a
child process so its peak memory (`max_rss_mb`) is its own. Baseline (same run): the usual script, pandas
`read_sql` of the whole day into a DataFrame and `to_parquet`, on 1 response in 10, time x 10.

`export_csv`: `GET /api/v1/forms/<slug>/export.csv` over real HTTP (a threaded WSGI server on loopback),
the body read as it streams. Baseline: paging through the JSON listing at its largest page, the way a
client would export without the endpoint, over the first 100,000 responses, rate extrapolated.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import resource
import tempfile
import threading
import time

import requests

from bench.common import admin_key, figure, throwaway_database
from fieldpipe import forms
from fieldpipe.db import connect
from fieldpipe.orgs import ensure_organization

RESPONSES = int(os.environ.get("BENCH_REPORTING_RESPONSES", 1_000_000))  # smaller for a quick try
DAY = dt.date(2026, 11, 20)
BASELINE_EVERY = 10
LISTING_SAMPLE = min(100_000, RESPONSES)

QUESTIONS = (
    [{"key": "name", "type": "text", "mask": "hash"}, {"key": "phone", "type": "phone", "mask": True},
     {"key": "email", "type": "email", "mask": True}, {"key": "note", "type": "long_text", "mask": True},
     {"key": "city", "type": "single_choice", "choices": ["pune", "nagpur", "shimla"]},
     {"key": "assets", "type": "multi_choice", "choices": ["tv", "fridge", "bike"]},
     {"key": "visited_on", "type": "date"}, {"key": "has_toilet", "type": "boolean"},
     {"key": "share", "type": "decimal"}, {"key": "village", "type": "text"}]
    + [{"key": f"count_{n}", "type": "integer"} for n in range(10)]
)

GENERATE_SQL = """
INSERT INTO responses (form_id, form_version_id, submission_id, collector_id, collector_phone, submitted_at,
                       received_at, updated_at, answers, content_hash)
SELECT %(form_id)s, %(version_id)s, gen_random_uuid(), 'enum-' || (i %% 500), '+9198' || lpad((i %% 500)::text, 8, '0'),
       %(day)s::timestamptz + (i * interval '80 ms'), %(day)s::timestamptz + (i * interval '80 ms'),
       %(day)s::timestamptz + (i * interval '80 ms'),
       jsonb_build_object(
           'name', 'Respondent ' || i, 'phone', '+9197' || lpad((i %% 100000000)::text, 8, '0'),
           'email', 'r' || i || '@example.org', 'note', 'lives near landmark ' || (i %% 1000),
           'city', (ARRAY['pune', 'nagpur', 'shimla'])[(1 + i %% 3)::int],
           'assets', (ARRAY['[]', '["tv"]', '["tv", "fridge"]'])[(1 + i %% 3)::int]::jsonb,
           'visited_on', to_char(date '2026-01-01' + (i %% 300)::int, 'YYYY-MM-DD'), 'has_toilet', i %% 7 <> 0,
           'share', (i %% 100) / 100.0, 'village', 'Village ' || (i %% 5000)
       ) || (SELECT jsonb_object_agg('count_' || n, (i * (n + 3)) %% 1000) FROM generate_series(0, 9) n),
       md5(i::text)
  FROM generate_series(1::bigint, %(n)s) i
"""


def _load(url: str) -> dict:
    with connect(url) as conn:
        organization_id = ensure_organization(conn, "bench", "Bench")
        forms.create_form(conn, organization_id, {"slug": "bench-survey", "title": "Bench", "questions": QUESTIONS})
        form = conn.execute("SELECT f.id, v.id AS version_id FROM forms f JOIN form_versions v ON v.form_id = f.id"
                            ).fetchone()
        conn.execute(GENERATE_SQL, {"form_id": form["id"], "version_id": form["version_id"], "n": RESPONSES,
                                    "day": dt.datetime.combine(DAY, dt.time(), dt.timezone.utc)})
        conn.commit()
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE responses")
    return form


def _archive_child(url: str, s3_url: str, queue) -> None:
    from fieldpipe.dev.airflow_runtime import local_aws_connection

    os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = local_aws_connection(s3_url)
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="fieldpipe-bench-airflow-"))
    from fieldpipe.objectstore import default_store
    from fieldpipe.reporting.archive import archive_day

    store = default_store()
    started = time.perf_counter()
    report = archive_day(url, store, DAY)
    seconds = time.perf_counter() - started
    size = sum(info.size for info in store.list(""))
    queue.put((seconds, report.rows, size, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def _pandas_baseline(url: str, form_id: int) -> float:
    import io

    import pandas as pd
    from sqlalchemy import create_engine

    from fieldpipe.db import sqlalchemy_url
    from fieldpipe.reporting.columns import form_select

    engine = create_engine(sqlalchemy_url(url))
    with connect(url) as conn:
        query, _ = form_select(conn, form_id, masked=True)
        text = query.as_string(conn).replace("ORDER BY", f"AND r.id % {BASELINE_EVERY} = 0 ORDER BY")
    started = time.perf_counter()
    frame = pd.read_sql(text.replace("%", "%%"), engine)
    frame.to_parquet(io.BytesIO())
    seconds = time.perf_counter() - started
    engine.dispose()
    return seconds * BASELINE_EVERY


def _serve(url: str):
    import logging

    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access line per request
    from api import create_app

    server = make_server("127.0.0.1", 0, create_app({"DATABASE_URL": url, "POOL_SIZE": 4}), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _export_csv(base: str, key: str) -> tuple[float, int]:
    started = time.perf_counter()
    lines = 0
    with requests.get(f"{base}/api/v1/forms/bench-survey/export.csv", headers={"Authorization": f"Bearer {key}"},
                      stream=True, timeout=600) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_content(1 << 20):
            lines += chunk.count(b"\n")
    return time.perf_counter() - started, lines - 1


def _listing_rate(base: str, key: str) -> float:
    session, cursor, rows = requests.Session(), None, 0
    started = time.perf_counter()
    while rows < LISTING_SAMPLE:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = session.get(f"{base}/api/v1/forms/bench-survey/responses", params=params,
                           headers={"Authorization": f"Bearer {key}"}, timeout=60).json()
        rows += len(page["items"])
        cursor = page["next_cursor"]
    return rows / (time.perf_counter() - started)


def run() -> dict:
    from moto.server import ThreadedMotoServer

    from fieldpipe.dev.embedded_db import free_port

    with throwaway_database() as url:
        form = _load(url)
        port = free_port()
        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        s3.start()
        try:
            queue = multiprocessing.get_context("spawn").Queue()
            child = multiprocessing.get_context("spawn").Process(
                target=_archive_child, args=(url, f"http://127.0.0.1:{port}", queue))
            child.start()
            seconds, rows, size, max_rss_mb = queue.get(timeout=1200)
            child.join()
        finally:
            s3.stop()
        assert rows == RESPONSES, rows
        baseline = _pandas_baseline(url, form["id"])

        server, base = _serve(url)
        try:
            key = admin_key(url)
            export_seconds, exported = _export_csv(base, key)
            listing_rate = _listing_rate(base, key)
        finally:
            server.shutdown()
        assert exported == RESPONSES, exported
    return {
        "archive_day": figure(seconds, "s", baseline, "<= 30 s and < 1 GB", higher_is_better=False,
                              rows=rows, parquet_mb=round(size / 1e6, 1), max_rss_mb=round(max_rss_mb),
                              note=f"baseline: pandas read_sql + to_parquet of 1 row in {BASELINE_EVERY}, time x "
                                   f"{BASELINE_EVERY}"),
        "export_csv": figure(RESPONSES / export_seconds, "rows/s", listing_rate, ">= 50,000 rows/s",
                             rows=exported, seconds=round(export_seconds, 1),
                             note=f"baseline: paging the JSON listing (limit 1000) over {LISTING_SAMPLE} rows"),
    }

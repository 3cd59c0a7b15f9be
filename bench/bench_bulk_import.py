"""Figure `bulk_import`: a 1,000,000-row CSV of 10 columns through the import path, rows/s and peak memory.

Data: one form of 8 questions (text, choice, integers, date, boolean), a CSV of 1,000,000 rows with the
columns submitted_at, collector_id and the 8 answers (about 100 MB), put in a local S3-compatible
server (moto) as a dropped file. Measured, in a child process so its peak resident memory (VmHWM) is its own:
`jobs.claim_incoming` plus `jobs.run_import`, what the import_responses DAG's task runs: the copy out
of object storage, parsing, the API's validation, set-based inserts in chunks, the report and the move
to processed/.

Baseline (same run): the seed's approach, one INSERT and commit per row (parsed with the csv module,
no validation), timed on the first 20,000 rows of the same file and extrapolated to rows/s.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench.common import figure, throwaway_database
from fieldpipe import forms
from fieldpipe.db import connect
from fieldpipe.dev.airflow_runtime import local_aws_connection
from fieldpipe.dev.embedded_db import free_port
from fieldpipe.orgs import ensure_organization

ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", 1_000_000))
BASELINE_ROWS = 20_000
TARGET = ">= 15,000 rows/s with peak memory < 500 MB"
REPO = Path(__file__).resolve().parent.parent
FORM = {
    "slug": "bench-import", "title": "Bench import",
    "questions": [
        {"key": "name", "type": "text", "required": True},
        {"key": "city", "type": "single_choice", "choices": ["pune", "nagpur", "shimla", "varanasi"]},
        {"key": "monthly_income", "type": "integer"},
        {"key": "monthly_savings", "type": "integer"},
        {"key": "household_size", "type": "integer"},
        {"key": "visited_on", "type": "date"},
        {"key": "has_toilet", "type": "boolean"},
        {"key": "local_word", "type": "text"},
    ],
}
HEADER = ["submitted_at", "collector_id", "name", "city", "monthly_income", "monthly_savings", "household_size",
          "visited_on", "has_toilet", "local_word"]
CITIES = ("pune", "nagpur", "shimla", "varanasi")


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(rows):
            writer.writerow([f"2026-11-{1 + i % 28:02d}T10:15:00+05:30", f"enum-{i % 400}", f"Respondent {i}",
                             CITIES[i % 4], 10000 + i % 90000, 1000 + i % 5000, 1 + i % 9,
                             f"2026-10-{1 + i % 28:02d}", "yes" if i % 3 else "no", "पानी"])


@contextmanager
def moto_server():
    """moto's S3-compatible server in this (otherwise idle) process; the import runs in a child."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def child_import(database_url: str) -> None:
    """In the child: claim the dropped file and run its import; print the report."""
    from fieldpipe.imports import jobs
    from fieldpipe.objectstore import default_store

    store = default_store()
    with connect(database_url) as conn:
        reports = [jobs.run_import(conn, store, import_id) for import_id in jobs.claim_incoming(conn, store)]
    # The high-water mark of this process's own memory: ru_maxrss of a child would also count the parent's
    # pages it was forked with (the bench's moto server holds the whole file), before the exec.
    peak_kb = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
    print(json.dumps({**{k: reports[0][k] for k in ("status", "rows", "created", "invalid")}, "peak_kb": peak_kb}))


def baseline_rate(database_url: str, path: Path) -> float:
    """One INSERT and one commit per row, as the seed did."""
    with connect(database_url) as conn:
        conn.execute("CREATE TABLE naive_import (id bigserial PRIMARY KEY, submitted_at timestamptz, "
                     "collector_id text, answers jsonb)")
        conn.commit()
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            started = time.perf_counter()
            inserted = 0
            for cells in reader:
                if inserted == BASELINE_ROWS:
                    break
                values = dict(zip(header, cells))
                conn.execute("INSERT INTO naive_import (submitted_at, collector_id, answers) VALUES (%s, %s, %s)",
                             (values.pop("submitted_at"), values.pop("collector_id"), json.dumps(values)))
                conn.commit()
                inserted += 1
            return inserted / (time.perf_counter() - started)


def run() -> dict:
    with throwaway_database() as url, moto_server() as endpoint, tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(endpoint), "FIELDPIPE_BUCKET": "bench"}
        os.environ.update({k: env[k] for k in ("AIRFLOW_CONN_AWS_DEFAULT", "FIELDPIPE_BUCKET")})
        from fieldpipe.objectstore import default_store

        with connect(url) as conn:
            organization_id = ensure_organization(conn, "bench")
            forms.create_form(conn, organization_id, FORM)
            conn.commit()
        path = Path(folder) / "responses.csv"
        write_csv(path, ROWS)
        with open(path, "rb") as f:
            default_store().put(f"bench/{FORM['slug']}/incoming/responses.csv", f)
        print(f"   {ROWS:,} rows, {path.stat().st_size / 1e6:.0f} MB in object storage", flush=True)

        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-c", f"from bench.bench_bulk_import import child_import; "
                                                        f"child_import({url!r})"],
                                cwd=REPO, env=env, check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        report = json.loads(result.stdout.strip().splitlines()[-1])
        peak_mb = report.pop("peak_kb") / 1024
        assert report == {"status": "done", "rows": ROWS, "created": ROWS, "invalid": 0}, report
        baseline = baseline_rate(url, path)
    rate = ROWS / seconds
    print(f"   import: {seconds:.1f} s, {rate:,.0f} rows/s, peak RSS {peak_mb:.0f} MB; "
          f"baseline one insert per row {baseline:,.0f} rows/s", flush=True)
    return figure(rate, "rows/s", baseline, TARGET, peak_memory_mb=round(peak_mb), seconds=round(seconds, 1),
                  rows=ROWS)

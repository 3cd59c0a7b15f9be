"""`openrosa_ingest`: OpenRosa submissions per second through gunicorn, as ODK Collect posts them.

16 keep-alive clients post formhub's real `tutorial_w_repeats` submission (text, integer, select one, a
repeat of two children, a geopoint) as `multipart/form-data` with `xml_submission_file`, each with its own
instanceID, to `/openrosa/<org>/submission`. The form is created from the fixture's XLSForm first.
Baseline: ODK Central's published single-server load test, 95-115 submissions/s (its upper end is used).
"""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import requests

from bench.bench_ingest import gunicorn, pregenerated
from bench.common import admin_key, figure, throwaway_database
from bench.loadgen import run_load

REPO = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_INGEST_SECONDS", 20))
CENTRAL_PUBLISHED = 115.0  # submissions/s, upper end of ODK Central's published 95-115
BOUNDARY = "fieldpipe-bench-boundary"


def fixtures() -> Path:
    for candidate in (REPO.parent / "shared" / "fixtures", Path("/work/shared/fixtures")):
        if candidate.is_dir():
            return candidate / "formhub" / "tutorial_w_repeats"
    raise RuntimeError("the shared fixtures (formhub/tutorial_w_repeats) are not on this machine")


def multipart(xml: bytes) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"xml_submission_file\"; "
            f"filename=\"submission.xml\"\r\nContent-Type: text/xml\r\n\r\n").encode() + xml + \
        f"\r\n--{BOUNDARY}--\r\n".encode()


def run() -> dict:
    folder = fixtures()
    template = (folder / "tutorial_w_repeats.xml").read_bytes()
    original_id = b"uuid:b31c6ac2-b8ca-4180-914f-c844fa10ed3b"
    with throwaway_database() as url:
        key = admin_key(url)
        with gunicorn("api.wsgi:app", url) as port:
            with open(folder / "tutorial_w_repeats.xls", "rb") as handle:
                requests.post(f"http://127.0.0.1:{port}/api/v1/forms", files={"file": handle},
                              headers={"Authorization": f"Bearer {key}"}).raise_for_status()
            bodies = [multipart(template.replace(original_id, f"uuid:{uuid.uuid4()}".encode()))
                      for _ in range(int(SECONDS * 1500))]
            basic = "Basic " + base64.b64encode(f"bench-device:{key}".encode()).decode()
            result = run_load("127.0.0.1", port, pregenerated("/openrosa/bench/submission", bodies), clients=16,
                              seconds=SECONDS, headers={"Authorization": basic, "X-OpenRosa-Version": "1.0"},
                              max_requests=len(bodies) - 16, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    assert set(result.statuses) == {201}, result.statuses
    print(f"   openrosa: {result.requests} in {result.seconds:.1f} s, p99 {result.percentile(0.99) * 1000:.1f} ms; "
          f"ODK Central published 95-115/s on one server", flush=True)
    return {"openrosa_ingest": figure(
        result.rate, "submissions/s", CENTRAL_PUBLISHED, ">= 400/s at 16 clients",
        p99_ms=round(result.percentile(0.99) * 1000, 1),
        baseline_note="ODK Central's published single-server load test: 95-115 submissions/s (115 used)")}

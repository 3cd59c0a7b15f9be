"""The README's walkthrough, run as written with bash and curl against a live API server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from tests.helpers import auth

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough_blocks() -> list[str]:
    text = README.read_text()
    start = text.index("### Walkthrough: a form of your own")
    section = text[start:text.index("\n## ", start)]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


@pytest.fixture
def live_api(app, clean_db):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/v1"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_the_walkthrough_runs_as_written(live_api, admin_key, client):
    setup, *steps = walkthrough_blocks()
    assert setup.startswith("API=http://localhost:5000/api/v1\nKEY=fpk_...") and len(steps) >= 5
    script = "\n".join(["set -euo pipefail", setup, f"API={live_api}", f"KEY={admin_key}", *steps])
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "201\n200\n" in done.stdout  # the retried post was a duplicate, not a second response

    h = auth(admin_key)
    form = client.get("/api/v1/forms/clinic-visits", headers=h).get_json()
    assert form["version"] == 2 and form["questions"][-1]["key"] == "referrals"
    responses = client.get("/api/v1/forms/clinic-visits/responses", headers=h).get_json()["items"]
    assert len(responses) == 3 and responses[0]["revision"] == 2 and responses[0]["answers"]["patients"] == 15
    printed = re.findall(r"^(7d1e6a52-3c4b-4f0e-8a9d-0b1c2d3e4f5\d) \{", done.stdout, flags=re.M)
    assert sorted(printed) == sorted(r["submission_id"] for r in responses)  # the paging loop saw each once
    listed = client.get("/api/v1/assessments?school=02030400777", headers=h).get_json()["items"]
    assert [c["submissions"] for c in listed[0]["classes"]] == [1]

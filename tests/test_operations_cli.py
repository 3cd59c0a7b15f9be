"""Issue 22: the fieldpipe command says its version, prints records as JSON for scripts, and shows progress
on a terminal when it walks many rows (run as a user would, in a subprocess)."""

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios

from tests.helpers import submission
from tests.test_cli import fieldpipe


def test_version_is_the_installed_package_version():
    from importlib.metadata import version

    out = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == f"fieldpipe {version('fieldpipe')}"


def test_keys_list_as_json_lists_records_without_the_keys(db_url, conn):
    key = fieldpipe(db_url, "keys", "create", "--org", "acme", "--role", "admin", "--label", "laptop",
                    "--create-org").stdout.strip().splitlines()[-1]
    fieldpipe(db_url, "keys", "create", "--org", "rival", "--role", "collector", "--create-org")
    records = json.loads(fieldpipe(db_url, "keys", "list", "--org", "acme", "--json").stdout)
    assert [(r["organization"], r["role"], r["label"], r["revoked_at"]) for r in records] == [
        ("acme", "admin", "laptop", None)]
    assert key[:10].startswith(records[0]["prefix"]) and key not in json.dumps(records)
    assert len(json.loads(fieldpipe(db_url, "keys", "list", "--json").stdout)) == 2
    refused = fieldpipe(db_url, "keys", "list", "--org", "nobody", "--json", check=False)
    assert refused.returncode == 1 and refused.stdout == ""


def test_repair_responses_as_json_names_fields_and_problems_never_values(db_url, conn, client, make_form,
                                                                          collector_key):
    from tests.helpers import auth

    make_form()
    body = submission()
    client.post("/api/v1/forms/household-survey/responses", json=body, headers=auth(collector_key))
    conn.execute("""UPDATE responses SET answers = jsonb_set(answers, '{local_word}', '"bell\\u0007"')""")
    listed = json.loads(fieldpipe(db_url, "repair", "responses", "acme", "household-survey", "--json").stdout)
    assert listed == {"values": [{"submission_id": body["submission_id"], "revision": 1,
                                  "field": "answers.local_word", "problem": "character", "action": "repaired"}],
                      "applied": False, "responses_repaired": None}
    applied = json.loads(fieldpipe(db_url, "repair", "responses", "acme", "household-survey", "--apply",
                                   "--json").stdout)
    assert applied["applied"] is True and applied["responses_repaired"] == 1


def run_on_a_terminal(db_url, *args) -> tuple[int, str]:
    """Run the command with its standard error on a pseudo-terminal, as in a shell; return (code, stderr)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "fieldpipe.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=terminal, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return proc.wait(timeout=120), seen.decode(errors="replace")


def test_walking_many_rows_shows_a_progress_bar_on_a_terminal_only(db_url, conn, client, make_form, collector_key):
    from tests.helpers import auth

    make_form()
    client.post("/api/v1/forms/household-survey/responses/batch",
                json={"items": [submission() for _ in range(50)]}, headers=auth(collector_key))
    code, shown = run_on_a_terminal(db_url, "repair", "responses", "acme", "household-survey")
    assert code == 0 and "scanning" in shown and "/50 " in shown  # the bar, with its total
    code, shown = run_on_a_terminal(db_url, "reporting", "refresh")
    assert code == 0 and "reporting views" in shown and "/1 " in shown
    piped = fieldpipe(db_url, "repair", "responses", "acme", "household-survey")
    assert piped.stderr == ""  # no bar when standard error is not a terminal (a log, a pipe)

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

from fieldpipe.orgs import ensure_organization
from fieldpipe.sms.outbox import NewMessage, enqueue
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


def run_on_a_terminal(db_url, *args, env: dict | None = None) -> tuple[int, str]:
    """Run the command with its standard error on a pseudo-terminal, as in a shell; return (code, stderr)."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a terminal 100 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "fieldpipe.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=terminal, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", **(env or {})})
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


def queue_sms(conn, count: int) -> int:
    acme = ensure_organization(conn, "acme")
    enqueue(conn, [NewMessage(f"announcement:{n}", "announcement", acme, f"+9198765{n:05d}", "Hello")
                   for n in range(count)])
    return acme


def sms_env(tmp_path) -> dict:
    """The local file provider, writing under tmp_path, fast enough for a test."""
    return {"FIELDPIPE_VAR_DIR": str(tmp_path), "FIELDPIPE_SMS_PROVIDER": "file", "FIELDPIPE_SMS_RATE_FILE": "500"}


def test_sms_dispatch_as_json_reports_the_outcomes_and_keeps_its_log_off_standard_output(db_url, conn, tmp_path):
    queue_sms(conn, 3)
    out = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "sms", "dispatch", "--json"], capture_output=True,
                         text=True, timeout=120, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", **sms_env(tmp_path)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["provider"], report["sent"], report["requests"], report["failed"], report["unknown"]) == (
        "file", 3, 3, 0, 0)
    assert len((tmp_path / "sms" / "sent.jsonl").read_text().splitlines()) == 3
    assert "sms dispatch via file done" in out.stderr
    again = json.loads(subprocess.run([sys.executable, "-m", "fieldpipe.cli", "sms", "dispatch", "--json"],
                                      capture_output=True, text=True, timeout=120, check=True,
                                      env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin", **sms_env(tmp_path)}).stdout)
    assert (again["sent"], again["requests"]) == (0, 0)  # nothing is sent twice


def test_sms_dispatch_shows_a_progress_bar_of_the_queued_messages_on_a_terminal(db_url, conn, tmp_path):
    queue_sms(conn, 40)
    code, shown = run_on_a_terminal(db_url, "sms", "dispatch", env=sms_env(tmp_path))
    assert code == 0 and "sending" in shown and "/40 " in shown and "40/40" in shown
    assert "sms dispatch via file done" in shown  # the log still shows, above the bar


def test_deliveries_retry_as_json_lists_the_requeued_ids(db_url, conn, client, admin_key, monkeypatch):
    from fieldpipe.webhooks.delivery import enqueue as enqueue_events
    from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
    from tests.helpers import auth

    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/h", "events": ["flag.opened"]},
                headers=auth(admin_key))
    acme = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    enqueue_events(conn, [{"organization_id": acme, "event": "flag.opened", "event_key": f"k{n}", "data": {}}
                          for n in range(3)])
    failed, other_failed, queued = (r["id"] for r in conn.execute("SELECT id FROM webhook_deliveries ORDER BY id"))
    conn.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE id <> %s", (queued,))

    one = fieldpipe(db_url, "deliveries", "retry", "--id", str(failed), "--json")
    assert json.loads(one.stdout) == {"requeued": [failed]}
    not_failed = fieldpipe(db_url, "deliveries", "retry", "--id", str(queued), "--json", check=False)
    assert not_failed.returncode == 1 and json.loads(not_failed.stdout) == {"requeued": []}
    assert json.loads(fieldpipe(db_url, "deliveries", "retry", "--all-failed", "--json").stdout) == {
        "requeued": [other_failed]}
    assert json.loads(fieldpipe(db_url, "deliveries", "retry", "--all-failed", "--json").stdout) == {"requeued": []}
    assert {r["status"] for r in conn.execute("SELECT status FROM webhook_deliveries")} == {"queued"}


def test_rules_check_push_and_pull_as_json_list_a_record_per_file(db_url, conn, make_form, tmp_path):
    from tests.test_rules_cli import rules_cli

    make_form()
    good = tmp_path / "household-survey.yaml"
    good.write_text("rules:\n  - {id: savings, expression: monthly_savings <= monthly_income, message: 'too much'}\n")
    broken = tmp_path / "water-point-audit.yaml"
    broken.write_text("rules:\n  - {id: typo, expression: flow_rate > 0, message: x}\n")

    checked = rules_cli(db_url, "check", good, broken, tmp_path / "missing.yaml", "--json")
    assert checked.returncode == 1
    records = {r["file"]: r for r in json.loads(checked.stdout)}
    assert records[str(good)] == {"file": str(good), "form": "acme/household-survey", "ok": True, "rules": 1,
                                  "expectations": 0, "problems": []}
    assert records[str(broken)]["ok"] is False and records[str(broken)]["form"] == "demo/water-point-audit (demo definition)"
    assert "unknown answer key 'flow_rate'" in records[str(broken)]["problems"][0]
    assert records[str(tmp_path / "missing.yaml")]["problems"] == ["no such file"]

    pushed = rules_cli(db_url, "push", "--org", "acme", good, tmp_path / "missing.yaml", "--json")
    assert pushed.returncode == 1 and pushed.stderr == ""
    saved, refused = json.loads(pushed.stdout)
    assert (saved["form"], saved["saved"], saved["version"], saved["rules"]) == ("acme/household-survey", True, 1, 1)
    assert refused["saved"] is False and refused["version"] is None and refused["problems"]
    again = json.loads(rules_cli(db_url, "push", "--org", "acme", good, "--json").stdout)
    assert [(r["saved"], r["version"]) for r in again] == [(False, 1)]  # unchanged

    pulled = rules_cli(db_url, "pull", "--org", "acme", "--dir", tmp_path / "out", "--json")
    assert json.loads(pulled.stdout) == [{"file": str(tmp_path / "out" / "household-survey.yaml"),
                                          "form": "acme/household-survey", "version": 1}]

"""A task kind added without touching fieldpipe: the package tests/plugins/example_task is installed with pip
(into a directory put on the path, as a deployment adds a package), found through its `fieldpipe.tasks`
entry points, configured through the API, and run: sync within the submission's budget, async in batches."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fieldpipe.config import TaskSettings
from fieldpipe.tasks.kinds import installed_kinds
from fieldpipe.tasks.runner import run_due
from tests.helpers import auth, submission

PLUGIN = Path(__file__).parent / "plugins" / "example_task"
TASKS = "/api/v1/forms/household-survey/tasks"


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(target), str(PLUGIN)], check=True)
    return target


@pytest.fixture
def plugin(plugin_dir, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_dir))
    installed_kinds.cache_clear()
    yield
    installed_kinds.cache_clear()


def add_task(client, key, kind, config):
    resp = client.post(TASKS, json={"kind": kind, "config": config}, headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_without_the_package_its_kinds_are_unknown(client, admin_key, make_form):
    installed_kinds.cache_clear()
    make_form()
    resp = client.post(TASKS, json={"kind": "answer_length", "config": {"question": "name"}}, headers=auth(admin_key))
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["code"] == "unknown_kind"


def test_a_plugin_sync_kind_answers_in_the_submission_and_never_fails_it(client, admin_key, make_form, conn,
                                                                         plugin, monkeypatch):
    make_form()
    resp = client.post(TASKS, json={"kind": "answer_length", "config": {"question": "nope"}}, headers=auth(admin_key))
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [("config.question", "unknown_question")]
    length = add_task(client, admin_key, "answer_length", {"question": "name"})
    slow = add_task(client, admin_key, "answer_length", {"question": "name", "sleep_ms": 3000})
    assert (length["mode"], length["events"]) == ("sync", [])
    monkeypatch.setenv("FIELDPIPE_TASKS_SYNC_BUDGET_MS", "500")
    url = "/api/v1/forms/household-survey/responses"
    body = client.post(url, json=submission(), headers=auth(admin_key)).get_json()
    assert body["tasks"] == {"results": {str(length["id"]): {"length": 4}},
                             "not_run": [{"task_id": slow["id"], "kind": "answer_length", "reason": "timeout"}]}
    failing = submission(answers={**submission()["answers"], "name": "boom"})
    resp = client.post(url, json=failing, headers=auth(admin_key))
    assert resp.status_code == 201  # stored, though a task raised
    assert {(n["task_id"], n["reason"]) for n in resp.get_json()["tasks"]["not_run"]} == {
        (length["id"], "error"), (slow["id"], "timeout")}
    assert client.get(f"{url}/{failing['submission_id']}", headers=auth(admin_key)).status_code == 200
    runs = client.get(f"{TASKS}/{length['id']}/runs", headers=auth(admin_key)).get_json()["items"]
    assert [(r["status"], r["outcome"], r["last_error"]) for r in runs] == [
        ("done", {"length": 4}, None), ("failed", None, "RuntimeError: the example kind was asked to fail")]
    # a retry of the post (a duplicate) runs nothing again
    again = client.post(url, json=failing, headers=auth(admin_key))
    assert again.status_code == 200 and "tasks" not in again.get_json()


def test_a_plugin_async_kind_runs_in_batches_and_a_poisoned_run_fails_alone(client, admin_key, make_form, conn,
                                                                           plugin, tmp_path):
    make_form()
    log = tmp_path / "log.jsonl"
    task = add_task(client, admin_key, "jsonl_log", {"path": str(log)})
    posted = [client.post("/api/v1/forms/household-survey/responses", json=submission(), headers=auth(admin_key))
              for _ in range(3)]
    poisoned = submission(answers={**submission()["answers"], "local_word": "poison"})
    client.post("/api/v1/forms/household-survey/responses", json=poisoned, headers=auth(admin_key))
    settings = TaskSettings(sync_budget_ms=1000, max_attempts=3, batch_size=100, lease_s=60,
                            backoff_base_s=3600, backoff_cap_s=3600)
    assert run_due(conn, settings=settings) == {"jsonl_log": {"done": 3, "skipped": 0, "retry": 1, "failed": 0}}
    logged = [json.loads(line)["submission_id"] for line in log.read_text().splitlines()]
    assert sorted(logged) == sorted(p.get_json()["submission_id"] for p in posted)
    failed = client.get(f"{TASKS}/{task['id']}/runs?status=queued", headers=auth(admin_key)).get_json()["items"]
    assert [(r["submission_id"], r["attempts"], r["last_error"]) for r in failed] == [
        (poisoned["submission_id"], 1, "ValueError: a poisoned response")]

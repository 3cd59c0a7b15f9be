"""The `run_tasks` DAG end to end (dag.test): one mapped task per kind with due runs, for every form at once
(a plugin's kind among them), and the webhook tasks' deliveries sent in the same run."""

from __future__ import annotations

import pytest

from fieldpipe.tasks.kinds import installed_kinds
from tests.helpers import auth, submission
from tests.test_tasks_plugin import plugin_dir  # noqa: F401 (fixture: the example plugin, installed by pip)
from tests.test_webhooks_delivery import loopback_allowed, receiver  # noqa: F401 (fixtures)


@pytest.mark.airflow
def test_one_task_instance_per_kind_runs_every_forms_tasks_once(client, admin_key, make_form, conn, run_dag,
                                                                receiver, plugin_dir, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(plugin_dir))
    installed_kinds.cache_clear()
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    log = tmp_path / "log.jsonl"
    for slug in ("first", "second", "third"):
        make_form(slug=slug)
        for kind, config in (("webhook", {"url": receiver.url(f"/{slug}"), "events": ["response.created"]}),
                             ("jsonl_log", {"path": str(log)})):
            resp = client.post(f"/api/v1/forms/{slug}/tasks", json={"kind": kind, "config": config},
                               headers=auth(admin_key))
            assert resp.status_code == 201, resp.get_json()
        for _ in range(2):
            assert client.post(f"/api/v1/forms/{slug}/responses", json=submission(),
                               headers=auth(admin_key)).status_code == 201

    run = run_dag("run_tasks")

    kind_tis = [ti for ti in run.get_task_instances() if ti.task_id == "run_kind"]
    assert sorted(ti.rendered_map_index for ti in kind_tis) == ["jsonl_log", "webhook"]
    assert {r["status"] for r in conn.execute("SELECT status FROM task_runs")} == {"done"}
    assert sorted(r.path for r in receiver.requests) == ["/first"] * 2 + ["/second"] * 2 + ["/third"] * 2
    assert len(log.read_text().splitlines()) == 6
    again = run_dag("run_tasks")  # nothing is run twice
    assert [ti for ti in again.get_task_instances() if ti.task_id == "run_kind" and ti.map_index >= 0] == []
    assert len(receiver.requests) == 6 and len(log.read_text().splitlines()) == 6
    installed_kinds.cache_clear()

"""The `import_responses` DAG end to end: its deferrable sensor sees a file dropped under incoming/, the
import task lands the rows, and the file moves to processed/ with its report."""

from __future__ import annotations

import json

import pytest

from tests.test_imports import FORM, csv_bytes, row


@pytest.mark.airflow
def test_a_dropped_file_is_imported_by_the_dag(conn, make_form, object_store, run_dag):
    make_form(FORM)
    object_store.put(f"acme/{FORM}/incoming/drop.csv", csv_bytes([row(i) for i in range(5)] + [row(5, city="x")]))

    run = run_dag("import_responses")

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"wait_for_files": "success", "import_files": "success"}
    report = json.loads(object_store.get(f"acme/{FORM}/processed/drop.csv.report.json"))
    assert {k: report[k] for k in ("status", "rows", "created", "invalid")} == \
        {"status": "done", "rows": 6, "created": 5, "invalid": 1}
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 5
    assert [info.key for info in object_store.list(f"acme/{FORM}/incoming/")] == []

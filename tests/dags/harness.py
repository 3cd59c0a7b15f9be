"""Run one DAG end to end with `dag.test()` against the test PostgreSQL.

Use the `run_dag` fixture (tests/conftest.py): it brings the session's Airflow metadata database and the
test application database, which the connection `fieldpipe_db` points at. Each run re-parses the DAGs
folder (that is how `dag.test()` serializes the DAG), so keep end-to-end runs to one or two per DAG.
"""

from __future__ import annotations

from pathlib import Path


def load_dag(dag_id: str):
    """The DAG `dag_id` from its own file in the configured DAGs folder (dag_id == file name)."""
    from airflow import settings
    from airflow.dag_processing.dagbag import DagBag

    path = Path(settings.DAGS_FOLDER) / f"{dag_id}.py"
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, f"{path} does not import:\n" + "\n".join(bag.import_errors.values())
    assert dag_id in bag.dags, f"{path} defines no DAG {dag_id!r} (found: {sorted(bag.dags)})"
    return bag.dags[dag_id]


def run_dag(dag_id: str, *, expect: str | None = "success", retries: int | None = 0, logical_date=None,
            **conf):
    """Run `dag_id` once with `conf` as the run's conf; assert the run ended in `expect`; return the DagRun.

    `retries=0` (the default) makes the first failure final: `dag.test()` would otherwise sleep through
    each retry delay. Pass `retries=None` to keep the DAG's own retries and retry policy.
    `logical_date` defaults to now; pass one to test a particular data interval.
    """
    from airflow.utils.state import TaskInstanceState

    dag = load_dag(dag_id)
    # dag.test() in 3.3.2 looks deadline alerts up by id but holds the alert objects (the scheduler holds ids):
    # a run of a DAG with a deadline fails at its end. Deadlines are the scheduler's business; drop them here.
    dag.deadline = None
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
    kwargs = {"logical_date": logical_date} if logical_date is not None else {}
    run = dag.test(run_conf=conf or None, **kwargs)
    if expect is not None:
        unfinished = {ti.task_id: ti.state for ti in run.get_task_instances()
                      if ti.state != TaskInstanceState.SUCCESS}
        assert run.state == expect, f"{dag_id} run ended {run.state}, expected {expect}; tasks not successful: {unfinished}"
    return run

"""The pipeline vocabulary, declared once: what DAGs, operators, the Airflow runtime and the domain agree on.

- `names`: asset URIs, pools (with their slots), Airflow connection ids. Plain strings; importing it
  imports nothing, so the domain (which reads connections) and the runtime (which creates pools before
  Airflow is imported) can both use it.
- `assets`: the `Asset` objects DAGs schedule on and publish (imports the Task SDK).
- `defaults`: `default_args` every DAG uses (owner, retries, errors that are not retried).
- `connections`: how a DAG task reaches the application database (`app_database()`).
- `failures`: per-form failure isolation (a broken form is recorded, skipped and retried next run).
- `groups`: forms bin-packed by pending rows into a bounded number of mapped task instances, each form
  still isolated inside its group.
"""

"""Development and local-run tooling; only the `fieldpipe` CLI (and tests and benchmarks) import it.

`devserver` (`make up`), `airflow_runtime` (the Airflow environment for `make up`, compose's init and the
tests), `dag_parse` (DAG parsing and conventions), `embedded_db` / `local_db` (the embedded PostgreSQL
under var/), `demo` / `demo_assessments` (the demo organization), `synthetic_assessments` (benchmark
data), `rules_check` (`fieldpipe rules check`, which falls back on the demo forms). The domain never
imports this package (tests/test_import_graph.py checks it).
"""

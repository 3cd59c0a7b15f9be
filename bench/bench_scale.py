"""Figure `scale_validate` (issue 23): every DAG once through real Airflow over 300 forms and 3,000,000 responses.

Data (made in the database, set-based: generate_series, then the indexes rebuilt): one organization with
300 forms of 10 questions and 10 expression rules each, plus a column expectation (GX) on the 10 largest;
3,000,000 responses skewed Zipf-like (the three largest forms hold about a third); 90% of them received
over the previous month and already validated (watermarks, and their flags), the day's 10% new. One form
has a poisoned rules version (its form dropped the question a rule reads): it must fail alone. 10% of the
forms (the smallest) export to a sheet (the local xlsx target); their first export is part of the run.

Measured: Airflow's api-server, scheduler and dag-processor (LocalExecutor) run against a throwaway
PostgreSQL; each DAG is unpaused and its run (the first run created after that, or a triggered one) is
timed from start to end with its task-instance count, read through the REST API. Three stages give the
growth: 30 forms with 300,000 responses, 300 forms with 300,000, and 300 forms with 3,000,000; the slope
is d log(time) / d log(size) (0 = flat, 1 = linear). `import_responses` (a continuous run waiting for
files) is left out: it has no files to import.

FIELDPIPE_BENCH_SCALE=0.1 runs at a tenth of the size (30 forms, 300,000 responses at most) in about 15
minutes; FIELDPIPE_BENCH_SCALE_DAGS (comma-separated) measures only the DAGs named.
Target: scale_validate <= 90 s with task_instances <= 20 (300 forms, 3,000,000 responses, 10% new).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import yaml

from bench.bench_validation import ANSWERS_SQL, QUESTIONS, RULES
from bench.common import figure
from fieldpipe import forms
from fieldpipe.db import connect, migrate
from fieldpipe.dev import airflow_runtime
from fieldpipe.dev.airflow_stack import AirflowStack
from fieldpipe.dev.embedded_db import EmbeddedPostgres, free_port
from fieldpipe.orgs import ensure_organization
from fieldpipe.rules import store

SCALE = float(os.environ.get("FIELDPIPE_BENCH_SCALE", 1.0))
FORMS, RESPONSES = max(3, round(300 * SCALE)), max(3000, round(3_000_000 * SCALE))
STAGES = [(max(3, FORMS // 10), RESPONSES // 10), (FORMS, RESPONSES // 10), (FORMS, RESPONSES)]
NEW_SHARE = 10  # one response in 10 is the day's new work
# Run in this order: flags before their callbacks, callbacks before the SMS they queue.
ALL_DAGS = ["validate_responses", "flag_callbacks", "send_sms", "export_sheets", "archive_responses",
            "aggregate_assessments"]
# FIELDPIPE_BENCH_SCALE_DAGS=validate_responses,export_sheets measures only those (the archive of 3,000,000
# responses' day alone takes tens of minutes on a loaded machine).
SELECTED = os.environ.get("FIELDPIPE_BENCH_SCALE_DAGS", ",".join(ALL_DAGS)).split(",")
DAGS = [d for d in ALL_DAGS if d in SELECTED or d == "validate_responses"]  # the figure's own DAG always runs
EXPECTATION = {"id": "income-in-range", "expectation": "expect_column_values_to_be_between",
               "kwargs": {"column": "monthly_income", "min_value": 0, "max_value": 99000},
               "message": "Income {monthly_income} is out of range", "severity": "warning"}

GENERATE_SQL = f"""
INSERT INTO responses (form_id, form_version_id, submission_id, collector_id, collector_phone, submitted_at,
                       received_at, updated_at, answers, content_hash)
SELECT f.form_id, f.version_id, gen_random_uuid(), 'enum-' || (i %% 500), '+9198' || lpad((i %% 500)::text, 8, '0'),
       t.at, t.at, t.at, {ANSWERS_SQL}, md5(i::text)
  FROM jsonb_to_recordset(%(plan)s) AS f(form_id bigint, version_id bigint, first bigint, n bigint)
 CROSS JOIN LATERAL generate_series(f.first, f.first + f.n - 1) i
 CROSS JOIN LATERAL (SELECT 5000 + (i * 7919) %% 95000 AS income,
                            CASE WHEN i %% %(new_share)s = 0 THEN now() - (i %% 86000) * interval '1 second'
                                 ELSE now() - interval '1 day 1 hour' - (i %% 2500000) * interval '1 second' END AS at) t
"""


def zipf_counts(forms_n: int, total: int, exponent: float = 1.1) -> list[int]:
    """Responses per form, largest first: rank k gets a share proportional to 1 / k**exponent."""
    weights = [1 / (k ** exponent) for k in range(1, forms_n + 1)]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[0] += total - sum(counts)
    return counts


@contextmanager
def secondary_indexes_dropped(conn, tables: tuple[str, ...]):
    """Indexes other than primary keys and unique constraints are dropped for the load and built afterwards
    (one sort per index instead of millions of insertions), exactly as they were defined."""
    rows = conn.execute(
        """SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
            WHERE t.relname = ANY(%s) AND NOT i.indisprimary AND NOT i.indisunique""", (list(tables),)).fetchall()
    for row in rows:
        conn.execute(f'DROP INDEX "{row["name"]}"')
    yield
    for row in rows:
        conn.execute(row["definition"])


def load_stage(url: str, forms_n: int, responses_n: int, exports_dir: Path) -> dict:
    """Replace everything with `forms_n` forms and `responses_n` responses; return what was made."""
    started = time.monotonic()
    shutil.rmtree(exports_dir, ignore_errors=True)  # the previous stage's workbooks
    with connect(url) as conn:
        conn.execute("TRUNCATE organizations, sms_messages RESTART IDENTITY CASCADE")
        org = ensure_organization(conn, "scale", "Scale")
        counts = zipf_counts(forms_n, responses_n)
        plan, first = [], 1
        exporting = set(range(forms_n - max(1, forms_n // 10), forms_n))  # the smallest tenth
        for rank, count in enumerate(counts):
            slug = f"form-{rank:03d}"
            settings = {"sheet": {"spreadsheet_id": slug, "worksheet": "Responses"}} if rank in exporting else {}
            forms.create_form(conn, org, {"slug": slug, "title": f"Form {rank}", "questions": QUESTIONS,
                                          "settings": settings})
            form = forms.get_form_row(conn, org, slug)
            document = yaml.safe_load(RULES)
            if rank < 10:
                document["expectations"] = [EXPECTATION]
            store.save(conn, form, document, "bench")
            plan.append({"form_id": form["id"], "version_id": form["version_id"], "first": first, "n": count})
            first += count
        poisoned = f"form-{forms_n // 2:03d}"  # drops the question two of its rules read: must fail alone
        forms.update_form(conn, org, poisoned, {"questions": [q for q in QUESTIONS if q["key"] != "children"]})
        with secondary_indexes_dropped(conn, ("responses", "response_revisions", "flags")):
            conn.execute(GENERATE_SQL, {"plan": json.dumps(plan), "new_share": NEW_SHARE})
            conn.execute(
                """INSERT INTO response_revisions (response_id, revision, form_version_id, collector_id,
                                                   collector_phone, submitted_at, answers, created_at)
                   SELECT id, 1, form_version_id, collector_id, collector_phone, submitted_at, answers, received_at
                     FROM responses""")
            # What earlier runs validated: watermarks a day old, and the old responses' flags of one rule.
            conn.execute(
                """INSERT INTO validation_watermarks (form_id, rules_fingerprint, validated_through)
                   SELECT id, 'version:' || rules_version, now() - interval '1 day' FROM forms""")
            conn.execute(
                """INSERT INTO flags (form_id, response_id, revision, rule_id, severity, notify, message,
                                      rules_version, status, close_reason, closed_at)
                   SELECT r.form_id, r.id, 1, 'savings-within-income', 'error', 'collector', 'Savings exceed income',
                          1, 'open', NULL, NULL
                     FROM responses r
                    WHERE r.updated_at <= now() - interval '1 day'
                      AND (r.answers ->> 'monthly_savings')::numeric > (r.answers ->> 'monthly_income')::numeric""")
        conn.commit()
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE responses, response_revisions, flags")
    seconds = time.monotonic() - started
    print(f"   loaded {forms_n} forms, {responses_n:,} responses (largest form {counts[0]:,}) in {seconds:.0f} s",
          flush=True)
    return {"forms": forms_n, "responses": responses_n, "largest_form": counts[0], "poisoned": poisoned}


def slope(small: float, large: float, size_small: float, size_large: float) -> float | None:
    if not small or not large or size_small == size_large:
        return None
    return round(math.log(large / small) / math.log(size_large / size_small), 2)


def failed_forms(url: str) -> list[str]:
    with connect(url) as conn:
        rows = conn.execute("""SELECT p.pipeline || ':' || f.slug AS name FROM pipeline_failures p
                                 JOIN forms f ON f.id = p.form_id ORDER BY 1""").fetchall()
    return [r["name"] for r in rows]


def run() -> dict:
    work = Path(tempfile.mkdtemp(prefix="fieldpipe-bench-scale-"))
    server = EmbeddedPostgres(work / "pg", free_port()).start()
    airflow = None
    try:
        app_url = server.ensure_database("fieldpipe")
        migrate(app_url)
        metadata_url = airflow_runtime.ensure_metadata_database(app_url)
        airflow = AirflowStack(app_url, metadata_url, work / "airflow", DAGS, extra_env={
            # one daily interval to summarise, not every day since the default start date
            "FIELDPIPE_ASSESSMENTS_START_DATE": (dt.date.today() - dt.timedelta(days=1)).isoformat()})
        airflow.start()
        stages = []
        for forms_n, responses_n in STAGES:
            made = load_stage(app_url, forms_n, responses_n, work / "var" / "exports")
            made["dags"] = {dag_id: airflow.run_once(dag_id) for dag_id in DAGS}
            made["failed_forms"] = failed_forms(app_url)
            print(f"   failed forms: {made['failed_forms']}", flush=True)
            stages.append(made)
    finally:
        if airflow is not None:
            airflow.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    load = os.getloadavg()
    small, wide, full = stages
    growth = {dag_id: {
        "seconds": [s["dags"][dag_id]["seconds"] for s in stages],
        "task_instances": [s["dags"][dag_id]["task_instances"] for s in stages],
        "slope_forms": slope(small["dags"][dag_id]["seconds"], wide["dags"][dag_id]["seconds"],
                             small["forms"], wide["forms"]),
        "slope_responses": slope(wide["dags"][dag_id]["seconds"], full["dags"][dag_id]["seconds"],
                                 wide["responses"], full["responses"]),
    } for dag_id in DAGS}
    validate = full["dags"]["validate_responses"]
    # No timed baseline: one mapped task per form (before issue 23) would be forms + 1 task instances.
    return {"scale_validate": figure(
        validate["seconds"], "s", 0, "<= 90 s with task_instances <= 20 (300 forms, 3,000,000 responses, 10% new)",
        higher_is_better=False, task_instances=validate["task_instances"], state=validate["state"],
        baseline_task_instances=full["forms"] + 1,
        failed_forms=full["failed_forms"], stages=[{k: v for k, v in s.items() if k != "dags"} for s in stages],
        growth=growth, load_average=[round(x, 1) for x in load])}

"""Figure `rules_dry_run`: a dry run of 10 rules over 1,000,000 stored responses of one form.

Data: the `validation` figure's form, rules and 1,000,000 generated responses (bench/bench_validation.py).
Measured: `fieldpipe.rules.dry_run.evaluate`, what `POST /api/v1/forms/{slug}/rules/dry-run` (or its job)
runs: the 10 expression rules' verdicts computed once per response in one aggregate statement, counts and
example ids per rule, no writes.

`database_cpu_seconds` is the CPU time the database spent on it: on a shared machine the wall time is
longer by however much the CPU is taken by others.

Baseline (same run): the same rules evaluated by loading the rows into Python (server-side cursor, the
in-process evaluator) on every tenth response, the time multiplied by 10.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.bench_validation import RESPONSES, SAMPLE_EVERY, python_loop, generated_form
from bench.common import figure, throwaway_database
from fieldpipe.db import connect
from fieldpipe.rules.dry_run import evaluate

TARGET = "<= 15 s"


def backend_cpu_seconds(pid: int) -> float:
    """CPU time the PostgreSQL backend has used (the throwaway server is local): the figure's wall time
    depends on what else the machine runs, this does not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run() -> dict:
    with throwaway_database() as url:
        form, ruleset, _ = generated_form(url)
        with connect(url, autocommit=True) as conn:
            backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
            cpu_before = backend_cpu_seconds(backend)
            started = time.perf_counter()
            result = evaluate(conn, form, ruleset)
            seconds = time.perf_counter() - started
            cpu_seconds = backend_cpu_seconds(backend) - cpu_before
            assert conn.execute("SELECT count(*) AS n FROM flags").fetchone()["n"] == 0
        sample_seconds, sample_violations = python_loop(url, ruleset)
    assert result["responses_evaluated"] == RESPONSES, result
    baseline = sample_seconds * SAMPLE_EVERY
    would_flag = {r["id"]: r["would_flag"] for r in result["rules"]}
    return figure(seconds, "s", baseline, TARGET, higher_is_better=False, responses=RESPONSES,
                  rules=len(ruleset.rules), would_flag_total=sum(would_flag.values()),
                  database_cpu_seconds=round(cpu_seconds, 1),
                  baseline_sample_violations=sample_violations,
                  note=f"baseline: Python loop (server-side cursor, in-process evaluator) over 1 response in "
                       f"{SAMPLE_EVERY}, measured {sample_seconds:.1f} s, time x {SAMPLE_EVERY}")

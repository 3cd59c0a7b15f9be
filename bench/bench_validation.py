"""Figure `validation`: 1,000,000 responses checked against 10 business rules, set-based.

Data: one form, 1,000,000 responses made in the database with generate_series (a few percent break each
rule; some answers are empty), in the real schema. Measured: `validate_form`, what the DAG's task runs for a
form: all 10 expression rules compiled into one SQL statement over the batch, flags upserted, flags of
passing responses closed, the watermark advanced, in one transaction.

Baseline (same run): a Python loop over rows, the way a script would do it: read each response's
answers with a server-side cursor and evaluate the same 10 rules in-process (`fieldpipe.rules.inprocess`,
message included for violations), on every tenth response, the time multiplied by 10 (the loop over all
1,000,000 would take minutes). Writing the flags is left out of the baseline, which favours it.
"""

from __future__ import annotations

import time

from bench.common import figure, throwaway_database
from fieldpipe import forms
from fieldpipe.db import connect
from fieldpipe.orgs import ensure_organization
from fieldpipe.rules.inprocess import VIOLATED, render_message, verdict
from fieldpipe.rules.loader import load_text
from fieldpipe.rules.validate import validate_form

RESPONSES = 1_000_000
SAMPLE_EVERY = 10
TARGET = "<= 20 s and >= 30x baseline"

QUESTIONS = [
    {"key": "name", "type": "text", "required": True},
    {"key": "phone", "type": "phone"},
    {"key": "city", "type": "single_choice", "choices": ["pune", "nagpur", "shimla", "varanasi"]},
    {"key": "monthly_income", "type": "integer"},
    {"key": "monthly_savings", "type": "integer"},
    {"key": "household_size", "type": "integer"},
    {"key": "children", "type": "integer"},
    {"key": "visited_on", "type": "date"},
    {"key": "has_toilet", "type": "boolean"},
    {"key": "assets", "type": "multi_choice", "choices": ["tv", "fridge", "bike", "car", "phone"]},
]

RULES = """
rules:
  - {id: savings-within-income, expression: monthly_savings <= monthly_income,
     message: "Savings {monthly_savings} exceed income {monthly_income}", notify: collector}
  - {id: amounts-not-negative, expression: monthly_income >= 0 and monthly_savings >= 0,
     message: "Income {monthly_income} and savings {monthly_savings} cannot be negative"}
  - {id: savings-rate, expression: monthly_savings / monthly_income <= 0.8, severity: warning,
     message: "Savings {monthly_savings} are over 80% of income {monthly_income}"}
  - {id: name-without-digits, expression: 'name matches "^[^0-9]+$"', message: "Name '{name}' has digits"}
  - {id: city-in-survey, expression: 'city in ["pune", "nagpur", "shimla"]', severity: warning,
     message: "City {city} is outside the survey area"}
  - {id: children-fit-household, expression: children < household_size,
     message: "{children} children in a household of {household_size}"}
  - {id: visit-not-in-future, expression: visited_on <= today, message: "Visit date {visited_on} is in the future"}
  - {id: visit-in-programme, expression: 'visited_on >= date("2025-01-01")', message: "Visit {visited_on} is too early"}
  - {id: assets-need-toilet, expression: has_toilet or count(assets) <= 3, severity: warning,
     message: "{assets} owned but no toilet"}
  - {id: income-per-person, expression: monthly_income / household_size >= 500, severity: warning,
     message: "Income {monthly_income} for {household_size} people"}
"""

# The answers of response number `i` (with `income` in scope); shared with bench_scale's skewed data.
ANSWERS_SQL = """jsonb_strip_nulls(jsonb_build_object(
           'name', CASE WHEN i %% 97 = 0 THEN 'R2D' || i ELSE 'Respondent ' || chr((65 + i %% 26)::int) END,
           'phone', '+9198' || lpad((i %% 100000000)::text, 8, '0'),
           'city', CASE WHEN i %% 101 = 0 THEN 'varanasi' ELSE (ARRAY['pune', 'nagpur', 'shimla'])[(1 + i %% 3)::int] END,
           'monthly_income', CASE WHEN i %% 50 <> 0 THEN income END,
           'monthly_savings', CASE WHEN i %% 37 = 0 THEN income + 1000 ELSE income * ((i * 13) %% 82) / 100 END,
           'household_size', 2 + (i * 31) %% 8,
           'children', (i * 17) %% 3,
           'visited_on', to_char(date '2024-12-25' + (i %% 600)::int, 'YYYY-MM-DD'),
           'has_toilet', i %% 11 <> 0,
           'assets', (ARRAY['[]', '["tv"]', '["tv", "fridge"]', '["tv", "fridge", "bike", "car"]'])[(1 + i %% 4)::int]::jsonb
       ))"""

GENERATE_SQL = f"""
INSERT INTO responses (form_id, form_version_id, submission_id, collector_id, submitted_at, answers, content_hash)
SELECT %(form_id)s, %(version_id)s, gen_random_uuid(), 'enum-' || (i %% 500), now(), {ANSWERS_SQL}, md5(i::text)
  FROM generate_series(1::bigint, %(n)s) i, LATERAL (SELECT 5000 + (i * 7919) %% 95000 AS income) x
"""


def python_loop(url: str, ruleset) -> tuple[float, int]:
    """Seconds for the row-by-row loop over every SAMPLE_EVERY-th response, and the violations it found."""
    violations = 0
    with connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor(name="rows") as cursor:
            cursor.itersize = 5000
            cursor.execute("SELECT id, revision, answers FROM responses WHERE id %% %s = 0", (SAMPLE_EVERY,))
            for row in cursor:
                for rule in ruleset.rules:
                    if verdict(rule.tree, row["answers"]) == VIOLATED:
                        render_message(rule.message_parts, row["answers"])
                        violations += 1
        return time.perf_counter() - started, violations


def generated_form(url: str):
    """(the bench form with RESPONSES generated responses, its 10 checked rules, seconds the generation took);
    the responses vacuumed and analyzed. Shared with the `rules_dry_run` figure."""
    with connect(url) as conn:
        organization_id = ensure_organization(conn, "bench", "Bench")
        forms.create_form(conn, organization_id, {"slug": "bench-survey", "title": "Bench", "questions": QUESTIONS})
        form = conn.execute(
            """SELECT f.id, f.slug, 'bench' AS organization, v.id AS version_id, v.questions
                 FROM forms f JOIN form_versions v ON v.form_id = f.id""").fetchone()
        generated_at = time.perf_counter()
        conn.execute(GENERATE_SQL, {"form_id": form["id"], "version_id": form["version_id"], "n": RESPONSES})
        conn.commit()
        generation_seconds = time.perf_counter() - generated_at
    ruleset = load_text(RULES, form["questions"], "bench-survey.yaml")
    assert len(ruleset.rules) == 10
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE responses")
    return form, ruleset, generation_seconds


def run() -> dict:
    with throwaway_database() as url:
        form, ruleset, generation_seconds = generated_form(url)
        with connect(url, autocommit=True) as conn:
            started = time.perf_counter()
            result = validate_form(conn, form, ruleset)
            seconds = time.perf_counter() - started
            flags_written = conn.execute("SELECT count(*) AS n FROM flags").fetchone()["n"]
            rerun = validate_form(conn, form, ruleset)  # nothing new: only the revisit window
        sample_seconds, sample_violations = python_loop(url, ruleset)
    assert result.checked == RESPONSES and not result.broken, result
    baseline = sample_seconds * SAMPLE_EVERY
    return figure(seconds, "s", baseline, TARGET, higher_is_better=False,
                  responses=RESPONSES, rules=len(ruleset.rules), flags_opened=result.opened, flags_in_table=flags_written,
                  rerun_opened=rerun.opened, generation_seconds=round(generation_seconds, 1),
                  baseline_sample_violations=sample_violations,
                  note=f"baseline: Python loop (server-side cursor, in-process evaluator) over 1 response in "
                       f"{SAMPLE_EVERY}, measured {sample_seconds:.1f} s, time x {SAMPLE_EVERY}; flag writes not "
                       f"included in the baseline")

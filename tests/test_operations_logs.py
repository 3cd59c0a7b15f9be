"""Issue 22: a task log says what the run did in numbers first; third-party noise (Great Expectations' INFO
lines and progress bars, fontTools' table-by-table INFO lines) is silenced."""

import logging
import subprocess
import sys
from pathlib import Path

from tests.helpers import auth, put_rules, submission

REPO = Path(__file__).resolve().parent.parent

# What the validate_responses task runs (dags/validate_responses.py), in a fresh process whose log goes to
# standard error at INFO, as a task's does.
VALIDATE_AS_THE_TASK_DOES = """
import logging, sys
from fieldpipe.db import connect
from fieldpipe.pipelines import groups
from fieldpipe.rules.validate import pending_work, validate_group
with connect(sys.argv[1], autocommit=True) as conn:
    [group] = groups.plan(pending_work(conn))  # the plan_groups task's work
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    validate_group(conn, group)  # GX Core imported in a thread, as in the task
"""


def test_a_validate_task_log_starts_with_its_numbers_and_has_no_third_party_noise(
        db_url, client, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", """
        expectations:
          - id: income-in-range
            expectation: expect_column_values_to_be_between
            kwargs: {column: monthly_income, min_value: 0, max_value: 100000}
            message: "Income {monthly_income} is out of range"
    """)
    for income in (20000, 900000):
        client.post("/api/v1/forms/household-survey/responses", headers=auth(collector_key),
                    json=submission(answers={"name": "Asha", "city": "pune", "monthly_income": income}))
    ran = subprocess.run([sys.executable, "-c", VALIDATE_AS_THE_TASK_DOES, db_url], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    lines = ran.stderr.splitlines()
    assert lines[0] == "INFO fieldpipe.pipelines.groups validate_responses group 1/1: 1 form(s), 2 rows " \
                       "(household-survey)", lines[:3]
    assert any("household-survey: checked 2 " in line and "flags opened 1" in line for line in lines[1:])
    assert not [line for line in lines if "great_expectations" in line or "Calculating Metrics" in line]
    assert not [line for line in lines if line.startswith(("ERROR", "CRITICAL"))]


def test_font_tools_says_nothing_below_a_warning():
    import fieldpipe.enrollment.fonts  # noqa: F401  (the certificate code configures its font tooling)

    for name in ("fontTools.subset", "fontTools.varLib.instancer", "fontTools.ttLib"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO), name

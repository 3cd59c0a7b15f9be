"""Statistical checks next to expressions: a value far from the form's (or the collector's) own recent answers,
and a collector whose answers are too uniform. Evaluated in SQL by the validation run and by dry runs."""

import pytest
import yaml

from fieldpipe.rules.validate import validate_slug
from tests.helpers import auth, put_rules, submission

CHECKS = """
expectations:
  - id: income-typical-for-form
    expectation: expect_column_values_within_median_deviations
    kwargs: {column: monthly_income, k: 5, min_answers: 10}
    message: "Income {monthly_income} is far from what this survey usually sees"
    severity: warning
  - id: income-typical-for-collector
    expectation: expect_column_values_within_median_deviations
    kwargs: {column: monthly_income, k: 3, by: collector, min_answers: 10}
    message: "Income {monthly_income} is far from what this collector usually records"
    severity: warning
  - id: collector-answers-vary
    expectation: expect_collector_answers_to_vary
    kwargs: {column: monthly_income, max_share: 0.5, min_answers: 10}
    message: "This collector records the same income again and again"
    notify: collector
"""


def post(client, key, collector, income):
    body = submission(collector={"id": collector})
    body["answers"].update(monthly_income=income, monthly_savings=0)
    resp = client.post("/api/v1/forms/household-survey/responses", json=body, headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["warnings"] == []  # distribution checks need the batch: none at submission
    return resp.get_json()["submission_id"]


def test_outliers_against_form_and_collector_and_uniform_collectors_are_flagged_as_the_dry_run_says(
        client, conn, admin_key, collector_key, make_form):
    make_form()
    # two honest collectors: incomes spread 10,000..39,000
    honest = [post(client, collector_key, f"enum-{i % 2}", 10000 + 1000 * i) for i in range(30)]
    # form: median 20,000, MAD 5,000, so beyond 5 MADs means off by more than 25,000;
    # enum-0: median 24,000, MAD 8,000, so beyond 3 MADs means off by more than 24,000
    far = post(client, collector_key, "enum-0", 90000)
    # a collector inventing data: the same income every time (MAD 0: never an outlier of their own)
    copied = [post(client, collector_key, "enum-lazy", 15000) for _ in range(10)]
    # a steady collector (20,000..20,011) whose 20,200 is ordinary for the form but not for them
    honest += [post(client, collector_key, "enum-steady", 20000 + i) for i in range(12)]
    unusual_for_collector = post(client, collector_key, "enum-steady", 20200)

    resp = client.post("/api/v1/forms/household-survey/rules/dry-run", json=yaml.safe_load(CHECKS),
                       headers=auth(admin_key))
    assert resp.status_code == 200, resp.get_json()
    predicted = {r["id"]: r for r in resp.get_json()["rules"]}
    assert predicted["income-typical-for-form"]["examples"] == [far]
    assert predicted["income-typical-for-collector"]["examples"] == [far, unusual_for_collector]
    assert predicted["collector-answers-vary"]["would_flag"] == 10
    assert set(predicted["collector-answers-vary"]["examples"]) <= set(copied)

    put_rules(client, admin_key, "household-survey", CHECKS)
    validate_slug(conn, "household-survey")
    found = client.get("/api/v1/forms/household-survey/flags?limit=1000", headers=auth(admin_key)).get_json()["items"]
    by_rule: dict = {}
    for flag in found:
        by_rule.setdefault(flag["rule_id"], set()).add(flag["submission_id"])
    assert by_rule == {"income-typical-for-form": {far}, "income-typical-for-collector": {far, unusual_for_collector},
                       "collector-answers-vary": set(copied)}
    assert all(predicted[rule]["would_flag"] == len(ids) for rule, ids in by_rule.items())
    assert not set(honest) & set().union(*by_rule.values())


def test_too_few_recent_answers_judge_nothing(client, conn, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", CHECKS.replace("min_answers: 10", "min_answers: 50"))
    for income in (100, 200, 300, 100000):
        post(client, collector_key, "enum-1", income)
    for _ in range(5):
        post(client, collector_key, "enum-lazy", 15000)
    [result] = validate_slug(conn, "household-survey")
    assert (result.checked, result.opened, result.broken) == (9, 0, {})


def test_a_collector_share_must_lie_strictly_between_0_and_1(client, admin_key, make_form):
    make_form()
    for share, accepted in ((0, False), (1, False), (0.01, True), (0.99, True)):
        resp = put_rules(client, admin_key, "household-survey", f"""
            expectations:
              - id: vary
                expectation: expect_collector_answers_to_vary
                kwargs: {{column: monthly_income, max_share: {share}}}
                message: x
        """, expect=None if accepted else 422)
        if not accepted:
            assert [e["message"] for e in resp.get_json()["errors"]] == [
                "expectation 'vary': max_share must be a number between 0 and 1"], share


def test_a_rules_file_naming_unknown_arguments_of_any_kind_lists_them_all():
    """YAML keys need not be strings (a CLI check reads the file as YAML): the problems still list every one."""
    from fieldpipe.rules.loader import RulesFileError, load_text
    from tests.helpers import HOUSEHOLD_QUESTIONS

    text = """
expectations:
  - id: income
    expectation: expect_column_values_to_be_between
    kwargs: {column: monthly_income, min_value: 0, 7: a, tolerance: b}
    message: x
2: top
"""
    with pytest.raises(RulesFileError) as raised:
        load_text(text, HOUSEHOLD_QUESTIONS, "household-survey.yaml")
    problems = [str(p) for p in raised.value.problems]
    assert problems == [
        "unknown top-level field 2 (allowed: expectations, form, rules)",
        "expectation 'income': expect_column_values_to_be_between takes no argument 7 (it takes: column, max_value, "
        "min_value, mostly, strict_max, strict_min)",
        "expectation 'income': expect_column_values_to_be_between takes no argument 'tolerance' (it takes: column, "
        "max_value, min_value, mostly, strict_max, strict_min)"], problems


K = "k must be a number above 0 (at most 1000)"
WINDOW = "window_days must be a whole number of days from 1 to 3660"
MIN_ANSWERS = "min_answers must be a whole number from 2 to 1000000"


@pytest.mark.parametrize("kwargs,problems", [
    ({"k": 0}, [K]), ({"k": -1}, [K]), ({"k": 1000.5}, [K]), ({"k": True}, [K]), ({"k": "3"}, [K]),
    ({"k": 1000}, []), ({"k": 0.1}, []),
    ({"by": "school"}, ["by must be form or collector"]), ({"by": "collector"}, []),
    ({"window_days": 0}, [WINDOW]), ({"window_days": 3661}, [WINDOW]), ({"window_days": 7.0}, [WINDOW]),
    ({"window_days": True}, [WINDOW]), ({"window_days": 1}, []), ({"window_days": 3660}, []),
    ({"min_answers": 1}, [MIN_ANSWERS]), ({"min_answers": 1_000_001}, [MIN_ANSWERS]), ({"min_answers": False}, [MIN_ANSWERS]),
    ({"min_answers": 2}, []), ({"min_answers": 1_000_000}, []),
    ({"k": 0, "by": "x", "window_days": 0, "min_answers": 0}, [K, "by must be form or collector", WINDOW, MIN_ANSWERS]),
])
def test_median_deviation_arguments_are_checked_at_their_bounds(client, admin_key, make_form, kwargs, problems):
    make_form()
    document = {"expectations": [{"id": "typical", "expectation": "expect_column_values_within_median_deviations",
                                  "kwargs": {"column": "monthly_income", **kwargs}, "message": "x"}]}
    resp = client.put("/api/v1/forms/household-survey/rules", json=document, headers=auth(admin_key))
    if problems:
        assert resp.status_code == 422, resp.get_json()
        assert [e["message"] for e in resp.get_json()["errors"]] == [f"expectation 'typical': {p}" for p in problems]
    else:
        assert resp.status_code in (200, 201), resp.get_json()

"""The equal value, given explicitly: every comparison operator, below, at and above its boundary, in both executors.

The property test (test_rules_agreement.py) checks that the executors agree with each other; these check
that each agrees with the meaning of the operator, so a change made to both at once (`<=` compiled as `<`
in SQL and evaluated as `<` in Python) fails here. The end-to-end tests at the bottom post the equal value
through the API and run the validation, as a user would see it: no warning, no flag.
"""

from __future__ import annotations

import json
import operator

import pytest
from psycopg import sql

from fieldpipe.forms import check_questions
from fieldpipe.rules.compiler import verdicts_query
from fieldpipe.rules.inprocess import NOT_EVALUATED, PASSED, VIOLATED, verdict
from fieldpipe.rules.loader import load_text
from fieldpipe.rules.regex import RegexError, translate
from fieldpipe.rules.validate import validate_slug
from tests.helpers import auth, put_rules, submission

QUESTIONS, _ = check_questions([
    {"key": "a", "type": "integer"}, {"key": "b", "type": "integer"},
    {"key": "x", "type": "decimal"}, {"key": "y", "type": "decimal"},
    {"key": "s", "type": "text"}, {"key": "t", "type": "text"},
    {"key": "d", "type": "date"}, {"key": "e", "type": "date"},
    {"key": "m", "type": "multi_choice", "choices": ["p", "q", "r"]},
])
OPERATORS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
             ">": operator.gt, ">=": operator.ge}
# (left key, right key, values below / equal / above): the equal pair is the one a one-sided change breaks.
OPERANDS = {
    "integer": ("a", "b", [(4, 5), (5, 5), (6, 5)]),
    "decimal": ("x", "y", [(0.1, 0.2), (0.25, 0.25), (2.5, 2.25)]),
    "text": ("s", "t", [("abc", "abd"), ("पानी", "पानी"), ("b", "B")]),
    "date": ("d", "e", [("2026-02-28", "2026-03-01"), ("2024-02-29", "2024-02-29"), ("2026-01-01", "2025-12-31")]),
}


def sql_verdicts(conn, rules, rows: list[dict]) -> dict[tuple[int, str], bool | None]:
    source = sql.SQL("SELECT * FROM (VALUES {}) AS s(id, revision, answers)").format(sql.SQL(", ").join(
        sql.SQL("({}, 1, {}::jsonb)").format(sql.Literal(i), sql.Literal(json.dumps(r))) for i, r in enumerate(rows)))
    return {(r["id"], r["rule_id"]): r["verdict"] for r in conn.execute(verdicts_query(rules, source))}


def ruleset(expressions: list[str]):
    text = json.dumps({"rules": [{"id": f"r{i}", "expression": e, "message": "m"} for i, e in enumerate(expressions)]})
    return load_text(text, QUESTIONS, "boundaries.yaml")


def check_both(conn, expressions: list[str], rows: list[dict], expected: dict[tuple[int, int], bool | None]):
    """expected[(row, rule index)]: True passed, False violated, None not evaluated, in both executors."""
    rules = ruleset(expressions).rules
    in_sql = sql_verdicts(conn, rules, rows)
    words = {True: PASSED, False: VIOLATED, None: NOT_EVALUATED}
    wrong = []
    for (row, index), want in expected.items():
        rule = rules[index]
        python = verdict(rule.tree, rows[row])
        if python != words[want] or in_sql[(row, rule.id)] is not want:
            wrong.append(f"{rule.expression} on {rows[row]}: python {python}, sql {in_sql[(row, rule.id)]}, want {want}")
    assert wrong == []


@pytest.mark.parametrize("kind", sorted(OPERANDS))
def test_every_operator_below_at_and_above_the_boundary(conn, kind):
    left, right, pairs = OPERANDS[kind]
    ops = list(OPERATORS)
    expressions = [f"{left} {op} {right}" for op in ops]
    rows = [{left: lv, right: rv} for lv, rv in pairs]
    expected = {(r, i): OPERATORS[op](*pairs[r]) for r in range(len(rows)) for i, op in enumerate(ops)}
    check_both(conn, expressions, rows, expected)


@pytest.mark.parametrize("op", sorted(OPERATORS))
def test_every_operator_against_a_literal_at_the_boundary(conn, op):
    expressions = [f"a {op} 5", f"x {op} 0.25", f's {op} "m"', f'd {op} date("2026-01-31")', f"count(m) {op} 2"]
    rows = [{"a": v, "x": 0.25 + (v - 5) / 100, "s": "lmn"[v - 4], "d": ["2026-01-30", "2026-01-31", "2026-02-01"][v - 4], "m": ["p", "q", "r"][:v - 3]}
            for v in (4, 5, 6)]
    expected = {(r, i): OPERATORS[op](r, 1) for r in range(3) for i in range(len(expressions))}
    check_both(conn, expressions, rows, expected)


def test_in_lists_and_is_empty_at_their_edges(conn):
    expressions = ["a in [4, 5]", "a not in [4, 5]", 's in ["x", ""]', "m is empty", "m is not empty", "s is empty"]
    rows = [{"a": 5, "s": "x", "m": []}, {"a": 6, "s": "X", "m": ["p"]}, {"s": ""}]
    expected = {
        (0, 0): True, (0, 1): False, (0, 2): True, (0, 3): True, (0, 4): False, (0, 5): False,
        (1, 0): False, (1, 1): True, (1, 2): False, (1, 3): False, (1, 4): True, (1, 5): False,
        (2, 0): None, (2, 1): None, (2, 2): None, (2, 3): True, (2, 4): False, (2, 5): True,
    }
    check_both(conn, expressions, rows, expected)


def test_arithmetic_at_the_boundary_and_division_by_zero(conn):
    expressions = ["x / y <= 0.8", "a - b >= 0", "a * 2 = b", "-a < b", "a / b > 1"]
    rows = [{"x": 8, "y": 10, "a": 5, "b": 5}, {"x": 8.1, "y": 10, "a": 5, "b": 10}, {"x": 1, "y": 0, "a": 1, "b": 0}]
    expected = {
        (0, 0): True, (0, 1): True, (0, 2): False, (0, 3): True, (0, 4): False,
        (1, 0): False, (1, 1): False, (1, 2): True, (1, 3): True, (1, 4): False,
        (2, 0): None, (2, 1): True, (2, 2): False, (2, 3): True, (2, 4): None,
    }
    check_both(conn, expressions, rows, expected)


# --- as a user sees it ------------------------------------------------------------------------------

SAVINGS_RULES = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
    notify: collector
  - id: income-at-least-savings
    expression: monthly_income >= monthly_savings
    message: "Income {monthly_income} below savings {monthly_savings}"
"""


def test_savings_equal_to_income_gets_no_warning_and_no_flag(client, conn, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS_RULES)
    url = "/api/v1/forms/household-survey/responses"
    answers = {"name": "Asha", "city": "pune", "monthly_income": 20000}
    equal = client.post(url, json=submission(answers={**answers, "monthly_savings": 20000}), headers=auth(collector_key))
    above = client.post(url, json=submission(answers={**answers, "monthly_savings": 20001}), headers=auth(collector_key))
    assert (equal.status_code, above.status_code) == (201, 201)
    assert equal.get_json()["warnings"] == []
    assert [w["rule_id"] for w in above.get_json()["warnings"]] == ["savings-within-income", "income-at-least-savings"]

    validate_slug(conn, "household-survey")
    flags = client.get("/api/v1/forms/household-survey/flags", headers=auth(admin_key)).get_json()["items"]
    assert sorted((f["submission_id"], f["rule_id"]) for f in flags) == sorted(
        (above.get_json()["submission_id"], rule) for rule in ("savings-within-income", "income-at-least-savings"))


def test_division_rounds_half_away_from_zero_at_the_tenth_place(conn):
    # 2/3 rounds up, 1/3 down, -2/3 away from zero: the same ten places in both executors.
    expressions = ["a / b = 0.6666666667", "a / b = 0.3333333333", "a / b = -0.6666666667"]
    rows = [{"a": 2, "b": 3}, {"a": 1, "b": 3}, {"a": -2, "b": 3}]
    expected = {(r, i): r == i for r in range(3) for i in range(3)}
    check_both(conn, expressions, rows, expected)


@pytest.mark.parametrize("pattern, message", [
    ("[a-", "write \\- for a '-' that is not a range like a-z (position 3)"),
    ("[-a]", "write \\- for a '-' that is not a range like a-z (position 2)"),
    ("[z-a]", "range z-a goes downwards"),
    ("[!-\\d]", "write \\- for a '-' that is not a range like a-z (position 3)"),
    ("a)", "unmatched ')' at position 2"),
    ("(a))", "unmatched ')' at position 4"),
])
def test_a_class_with_a_dangling_or_backward_range_is_refused_saying_where(pattern, message):
    with pytest.raises(RegexError) as refused:
        translate(pattern)
    assert str(refused.value) == message


def test_dividing_by_a_decimal_below_one_rounds_half_away_from_zero_too(conn):
    # 2 / 0.3 = 6.66666666666...: the remainder at the tenth place is more than half of 0.3; so is -2 / 0.3's
    expressions = ["x / y = 6.6666666667", "x / y = -6.6666666667", "x / y = 2"]
    rows = [{"x": 2, "y": 0.3}, {"x": -2, "y": 0.3}, {"x": 2, "y": 1}]
    expected = {(r, i): r == i for r in range(3) for i in range(3)}
    check_both(conn, expressions, rows, expected)


def test_a_negated_class_anywhere_in_a_pattern_and_a_plain_class_after_an_anchor(conn):
    expressions = ['s matches "[^0-9]"', 's matches "^[A-Z][a-z]+$"', 's matches "x[^a]"']
    rows = [{"s": "123"}, {"s": "12a"}, {"s": "Asha"}, {"s": "asha"}, {"s": "xb"}, {"s": "xa"}]
    expected = {
        (0, 0): False, (1, 0): True, (2, 0): True, (3, 0): True, (4, 0): True, (5, 0): True,
        (0, 1): False, (1, 1): False, (2, 1): True, (3, 1): False, (4, 1): False, (5, 1): False,
        (0, 2): False, (1, 2): False, (2, 2): False, (3, 2): False, (4, 2): True, (5, 2): False,
    }
    check_both(conn, expressions, rows, expected)


@pytest.mark.parametrize("expression, message", [
    ('a > "abc"', "compares number answer 'a' with the text 'abc'"),
    ("s = 5", "compares text answer 's' with the number 5"),
])
def test_a_comparison_of_two_kinds_names_both_as_a_person_reads_them(expression, message):
    from fieldpipe.rules.loader import RulesFileError

    with pytest.raises(RulesFileError) as refused:
        ruleset([expression])
    assert message in str(refused.value)

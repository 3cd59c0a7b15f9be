"""The SQL executor and the in-process executor are two implementations of one semantics: they must agree.

Hypothesis generates answers (empty, of the right type, now and then of a wrong type) and well-typed
rules over every question type; the rules are compiled to SQL and run in the real PostgreSQL over the
same answers, and each verdict and violation message must equal the in-process one.

The runs are derandomized (the same examples every run: a failure is never a matter of luck), and the
boundaries a one-sided change would break (equal values under every operator) are given as explicit examples.
"""

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from psycopg import sql

from fieldpipe.forms import check_questions
from fieldpipe.rules.compiler import verdicts_query, violations_query
from fieldpipe.rules.inprocess import NOT_EVALUATED, PASSED, render_message, verdict
from fieldpipe.rules.loader import load_text
from fieldpipe.rules.regex import RegexError, translate

QUESTIONS, _ = check_questions([
    {"key": "n1", "type": "integer"},
    {"key": "n2", "type": "decimal"},
    {"key": "t1", "type": "text"},
    {"key": "c1", "type": "single_choice", "choices": ["a", "b", "c"]},
    {"key": "d1", "type": "date"},
    {"key": "b1", "type": "boolean"},
    {"key": "m1", "type": "multi_choice", "choices": ["x", "y", "z"]},
])
MESSAGE = "n1={n1} n2={n2} t1={t1} c1={c1} d1={d1} b1={b1} m1={m1} 100%"
PATTERNS = ["^a", "b$", "^[a-c]+$", "\\d", "[^a ]", "a.b", "^(a|b)*$", "\\s", "A{2}", "^\\w+\\.?$", "[a\\-z]", "(?:ab)+"]
TEXT_ALPHABET = "abcAB1 .-\nअ"

numbers = st.one_of(st.integers(-50, 50).map(str), st.sampled_from(["0", "0.5", "1.25", "3", "100", "0.1"]))
text_literals = st.sampled_from(['"a"', '"b"', '"c"'])
date_literals = st.sampled_from(['date("2024-02-29")', 'date("2026-01-01")', "today", 'date("2030-12-31")'])


def num_expr():
    leaf = st.one_of(st.sampled_from(["n1", "n2", "count(m1)"]), numbers)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"-{e}"),
    ), max_leaves=4)


def bool_expr():
    comparison = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
    text_side = st.one_of(st.just("t1"), st.just("c1"), text_literals)
    leaf = st.one_of(
        st.tuples(num_expr(), comparison, num_expr()).map(" ".join),
        st.tuples(text_side, comparison, text_side).map(" ".join),
        st.tuples(st.sampled_from(["d1", 'date("2025-06-01")']), comparison, date_literals).map(" ".join),
        st.sampled_from(["b1", "b1 = true", "b1 != false", "not b1"]),
        st.tuples(st.sampled_from(["c1", "t1"]), st.sampled_from(["in", "not in"]),
                  st.lists(text_literals, min_size=1, max_size=3)).map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
        st.tuples(st.sampled_from(["n1", "n2"]), st.sampled_from(["in", "not in"]),
                  st.lists(numbers, min_size=1, max_size=3)).map(lambda t: f"{t[0]} {t[1]} [{', '.join(t[2])}]"),
        st.sampled_from(PATTERNS).map(lambda p: "t1 matches " + json.dumps(p)),
        st.tuples(st.sampled_from(["n1", "n2", "t1", "c1", "d1", "b1", "m1"]), st.sampled_from(["is empty", "is not empty"])).map(" ".join),
    )
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda e: f"not ({e})"),
    ), max_leaves=4)


def answers_strategy():
    values = {
        "n1": st.one_of(st.integers(-60, 60), st.just("12")),
        "n2": st.one_of(st.floats(-100, 100, allow_nan=False).map(lambda f: round(f, 2)), st.integers(-5, 5), st.just(True)),
        "t1": st.one_of(st.text(TEXT_ALPHABET, max_size=5), st.just(7)),
        "c1": st.sampled_from(["a", "b", "c"]),
        "d1": st.one_of(st.dates(min_value=__import__("datetime").date(2020, 1, 1),
                                 max_value=__import__("datetime").date(2031, 1, 1)).map(lambda d: d.isoformat()),
                        st.just("2026-02-30")),
        "b1": st.booleans(),
        "m1": st.lists(st.sampled_from(["x", "y", "z"]), unique=True, max_size=3),
    }
    return st.fixed_dictionaries({}, optional=values)


@pytest.fixture
def pg(conn):
    return conn


OPERATORS = ["=", "!=", "<", "<=", ">", ">="]
EQUAL_ROWS = [{"n1": 5, "n2": 5, "t1": "b", "c1": "b", "d1": "2026-01-01", "m1": ["x", "y"]},
              {"n1": 4, "n2": 4.5, "t1": "a", "c1": "c", "d1": "2025-12-31", "m1": ["x"]},
              {"n1": 6, "n2": 5.5, "t1": "c", "c1": "a", "d1": "2026-01-02", "m1": ["x", "y", "z"]}]


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(expressions=st.lists(bool_expr(), min_size=1, max_size=3), rows=st.lists(answers_strategy(), min_size=1, max_size=4))
@example(expressions=[f"n1 {op} 5" for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f"n2 {op} 5" for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f"n1 {op} n2" for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f't1 {op} "b"' for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f"t1 {op} c1" for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f'd1 {op} date("2026-01-01")' for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=[f"count(m1) {op} 2" for op in OPERATORS], rows=EQUAL_ROWS)
@example(expressions=["n1 / 5 <= 1", "(n2 - 5) * 2 >= 0", "n1 in [5]", "n1 not in [5]"], rows=EQUAL_ROWS)
def test_sql_and_python_agree_on_every_verdict_and_message(pg, expressions, rows):
    rules_yaml = {"rules": [{"id": f"r{i}", "expression": e, "message": MESSAGE} for i, e in enumerate(expressions)]}
    ruleset = load_text(json.dumps(rules_yaml), QUESTIONS, "generated.yaml")
    source = sql.SQL("SELECT * FROM (VALUES {}) AS s(id, revision, answers)").format(sql.SQL(", ").join(
        sql.SQL("({}, 1, {}::jsonb)").format(sql.Literal(i), sql.Literal(json.dumps(a))) for i, a in enumerate(rows)))

    sql_verdicts = {(r["id"], r["rule_id"]): r["verdict"] for r in pg.execute(verdicts_query(ruleset.rules, source))}
    sql_messages = {(r["response_id"], r["rule_id"]): r["message"] for r in pg.execute(violations_query(ruleset.rules, source))}

    py_messages = {}
    for i, answers in enumerate(rows):
        for rule in ruleset.rules:
            outcome = verdict(rule.tree, answers)
            expected = None if outcome == NOT_EVALUATED else outcome == PASSED
            assert sql_verdicts[(i, rule.id)] is expected, (rule.expression, answers, sql_verdicts[(i, rule.id)], outcome)
            if outcome not in (PASSED, NOT_EVALUATED):
                py_messages[(i, rule.id)] = render_message(rule.message_parts, answers)
    assert sql_messages == py_messages


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=st.text("ab.^$|()[]{}*+?\\-dwsDn1,:", max_size=8), subjects=st.lists(st.text("ab1 -\n.", max_size=6), min_size=1, max_size=4))
def test_every_regex_the_subset_accepts_means_the_same_in_postgresql(pg, pattern, subjects):
    try:
        python_pattern, sql_pattern = translate(pattern)
    except RegexError:
        return
    query = sql.SQL("SELECT s, s ~ {} AS hit FROM unnest({}::text[]) s").format(sql.Literal(sql_pattern), sql.Literal(subjects))
    hits = {r["s"]: r["hit"] for r in pg.execute(query)}
    for subject in subjects:
        assert hits[subject] == (re.search(python_pattern, subject, re.DOTALL) is not None), (pattern, subject)

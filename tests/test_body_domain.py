"""The request body's domain check (fieldpipe.domains.body_problems): its fast path over a whole body agrees
with the walk that names each problem's field, at every bound."""

import math

import pytest
from hypothesis import given, settings, strategies as st

from fieldpipe import domains
from fieldpipe.domains import JSON_MAX_DEPTH, KEY_MAX_LENGTH, STRING_MAX_LENGTH, body_problems


def problems(body) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in body_problems(body)]


def nested(depth: int, leaf) -> object:
    """`leaf` inside `depth` lists."""
    for _ in range(depth):
        leaf = [leaf]
    return leaf


def batch(**answers) -> dict:
    """999 clean submissions, then one with `answers` added."""
    def item(extra):
        return {"submission_id": "x", "answers": {"name": "Asha", "notes": "कुआँ\tगाँव\n", "n": 1.5, **extra}}
    return {"items": [item({}) for _ in range(999)] + [item(answers)]}


@pytest.mark.parametrize("body, expected", [
    (batch(), []),
    (batch(word="a" * STRING_MAX_LENGTH), []),
    (batch(word="a" * (STRING_MAX_LENGTH + 1)), [("items[999].answers.word", "too_long")]),
    (batch(word="pa\x85ni"), [("items[999].answers.word", "character")]),
    (batch(word="\ud800"), [("items[999].answers.word", "character")]),
    (batch(word=["ok", "\x00"]), [("items[999].answers.word[1]", "character")]),
    (batch(n=-math.inf), [("items[999].answers.n", "type")]),
    (batch(n=[1.0, math.nan]), [("items[999].answers.n[1]", "type")]),
    (batch(**{"k" * KEY_MAX_LENGTH: 1}), []),
    (batch(**{"k" * (KEY_MAX_LENGTH + 1): 1}), [(f"items[999].answers.{'k' * 40}", "key")]),
    (batch(**{"a\x1fb": 1}), [("items[999].answers.a\\x1fb", "key")]),
    (nested(JSON_MAX_DEPTH, "leaf"), []),
    (nested(JSON_MAX_DEPTH, []), []),
    (nested(JSON_MAX_DEPTH + 1, "leaf"), [("[0]" * (JSON_MAX_DEPTH + 1), "depth")]),
    (nested(JSON_MAX_DEPTH, {}), []),
    (nested(JSON_MAX_DEPTH, {"a": None}), [("[0]" * JSON_MAX_DEPTH + ".a", "depth")]),
    ("\x7f", [("", "character")]),
    (math.inf, [("", "type")]),
    ("", []), (None, []), (2**80, []),
])
def test_a_body_is_refused_exactly_where_it_leaves_the_domain(body, expected):
    assert problems(body) == expected


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_the_fast_path_finds_a_problem_whenever_the_walk_does(body):
    assert domains._body_is_clean(body) == (not list(domains._problems(body, "", 0)))

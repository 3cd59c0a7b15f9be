"""The in-process executor: one response's answers against checked rules, with the SQL executor's semantics.

Numbers are exact decimals (as PostgreSQL `numeric`), division is rounded the way the SQL is, logic
is three-valued (None = unknown), and a rule that reads an empty answer is not evaluated.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any

from fieldpipe.rules.expression import (
    ASCII_DATE, BOOLEAN, CHOICES, DATE, NUMBER, TEXT, Answer, Arithmetic, Compare, Count, InList, IsEmpty, Literal, Logical,
    Matches, Negate, Node, Not, Today, answers_read, typed_answers,
)

PRECISION = 100
DIVISION_SCALE = Decimal(10) ** 10
PASSED, VIOLATED, NOT_EVALUATED = "passed", "violated", "not_evaluated"


def typed_value(value: Any, answer_type: str) -> Any:
    """The answer as the expression sees it, or None when empty or not of the question's type."""
    if answer_type == NUMBER:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if answer_type == TEXT:
        return value if isinstance(value, str) and value != "" else None
    if answer_type == DATE:
        if not isinstance(value, str) or not ASCII_DATE.fullmatch(value):
            return None
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    if answer_type == BOOLEAN:
        return value if isinstance(value, bool) else None
    if answer_type == CHOICES:
        return value if isinstance(value, list) and value else None
    raise ValueError(answer_type)


def divide(left: Decimal, right: Decimal) -> Decimal | None:
    """Exact quotient rounded half away from zero to 10 places; None for a zero divisor.

    The same integer steps as the SQL function `fieldpipe_rule_div` (migration 0002), so both agree.
    """
    if right == 0:
        return None
    scaled = left * DIVISION_SCALE
    quotient = scaled // right  # truncates toward zero, like PostgreSQL's div()
    remainder = scaled - quotient * right
    if 2 * abs(remainder) >= abs(right):
        quotient += 1 if (left > 0) == (right > 0) else -1
    return quotient / DIVISION_SCALE


def today() -> dt.date:
    """`today` is the current date in UTC, in both executors."""
    return dt.datetime.now(dt.timezone.utc).date()


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.DOTALL)


def evaluate(node: Node, answers: dict) -> bool | None:
    """True, False, or None (unknown). Assumes the answers the expression reads are present."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return _eval(node, answers)


def verdict(node: Node, answers: dict) -> str:
    """passed, violated, or not_evaluated (an answer it reads is empty, or the result is unknown)."""
    types = typed_answers(node)
    for key in answers_read(node):
        if typed_value(answers.get(key), types[key]) is None:
            return NOT_EVALUATED
    result = evaluate(node, answers)
    return NOT_EVALUATED if result is None else PASSED if result else VIOLATED


def _eval(node: Node, answers: dict) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Today):
        return today()
    if isinstance(node, Answer):
        return typed_value(answers.get(node.key), node.answer_type)
    if isinstance(node, Count):
        value = answers.get(node.key)
        return Decimal(len(value)) if isinstance(value, list) else Decimal(0)
    if isinstance(node, IsEmpty):
        empty = typed_value(answers.get(node.key), node.answer_type) is None
        return not empty if node.negated else empty
    if isinstance(node, Negate):
        value = _eval(node.operand, answers)
        return None if value is None else -value
    if isinstance(node, Arithmetic):
        left, right = _eval(node.left, answers), _eval(node.right, answers)
        if left is None or right is None:
            return None
        if node.op == "+":
            return left + right
        if node.op == "-":
            return left - right
        if node.op == "*":
            return left * right
        return divide(left, right)
    if isinstance(node, Compare):
        left, right = _eval(node.left, answers), _eval(node.right, answers)
        if left is None or right is None:
            return None
        return {"=": left == right, "!=": left != right, "<": left < right, "<=": left <= right,
                ">": left > right, ">=": left >= right}[node.op]
    if isinstance(node, InList):
        value = _eval(node.operand, answers)
        if value is None:
            return None
        found = any(value == v.value for v in node.values)
        return not found if node.negated else found
    if isinstance(node, Matches):
        value = _eval(node.operand, answers)
        return None if value is None else _compiled(node.python_pattern).search(value) is not None
    if isinstance(node, Not):
        value = _eval(node.operand, answers)
        return None if value is None else not value
    if isinstance(node, Logical):
        left, right = _eval(node.left, answers), _eval(node.right, answers)
        if node.op == "and":
            if left is False or right is False:
                return False
            return None if left is None or right is None else True
        if left is True or right is True:
            return True
        return None if left is None or right is None else False
    raise TypeError(node)  # pragma: no cover


def answer_text(value: Any) -> str:
    """An answer as a message quotes it; the SQL executor renders the same text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        number = Decimal(repr(value))
        return format(number.copy_abs() if number == 0 else number, "f")  # numeric has no -0
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def render_message(parts: list[tuple[str, str]], answers: dict) -> str:
    return "".join(text if kind == "text" else answer_text(answers.get(text)) for kind, text in parts)

"""The rule expression language: tokens, a recursive-descent parser and the type checker.

The parser builds a small tree of dataclasses; `typecheck` resolves answer keys against a form's
questions and rejects what cannot be evaluated the same way in SQL and in Python. The two executors
(`fieldpipe.rules.sql`, `fieldpipe.rules.python`) walk the same checked tree.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from fieldpipe.rules.regex import RegexError, translate

NUMBER, TEXT, DATE, BOOLEAN, CHOICES = "number", "text", "date", "boolean", "choices"
# What a question's answer is inside an expression.
ANSWER_TYPES = {
    "integer": NUMBER, "decimal": NUMBER,
    "text": TEXT, "long_text": TEXT, "single_choice": TEXT, "phone": TEXT, "email": TEXT,
    "date": DATE, "boolean": BOOLEAN, "multi_choice": CHOICES,
}
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ORDERED_TYPES = (NUMBER, TEXT, DATE)
# ASCII digits only: PostgreSQL's date parser and the SQL guard accept nothing else.
ASCII_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
KEYWORDS = {"and", "or", "not", "in", "is", "empty", "matches", "true", "false", "today", "date", "count"}


class ExpressionError(ValueError):
    """What is wrong with an expression, in words a form owner can act on."""


# --- tokens -----------------------------------------------------------------------------------------

TOKEN_PATTERN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|==|[-+*/()<>=\[\],])
""", re.VERBOSE)


@dataclass(frozen=True)
class Token:
    kind: str  # number | string | name | op | end
    text: str
    column: int  # 1-based, for messages


def tokenize(source: str) -> list[Token]:
    tokens, pos = [], 0
    while pos < len(source):
        match = TOKEN_PATTERN.match(source, pos)
        if match is None:
            raise ExpressionError(f"unexpected character {source[pos]!r} at column {pos + 1}")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(source) + 1))
    return tokens


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# --- tree ---------------------------------------------------------------------------------------------

@dataclass
class Node:
    type: str | None = field(default=None, init=False, compare=False)


@dataclass
class Literal(Node):
    value: Decimal | str | bool | dt.date
    kind: str


@dataclass
class Today(Node):
    pass


@dataclass
class Answer(Node):
    key: str
    answer_type: str | None = None  # set by the type checker


@dataclass
class Count(Node):
    key: str


@dataclass
class IsEmpty(Node):
    key: str
    negated: bool
    answer_type: str | None = None


@dataclass
class Negate(Node):
    operand: Node


@dataclass
class Arithmetic(Node):
    op: str
    left: Node
    right: Node


@dataclass
class Compare(Node):
    op: str
    left: Node
    right: Node


@dataclass
class InList(Node):
    operand: Node
    values: list[Literal]
    negated: bool


@dataclass
class Matches(Node):
    operand: Node
    pattern: str
    python_pattern: str = ""
    sql_pattern: str = ""


@dataclass
class Logical(Node):
    op: str  # and | or
    left: Node
    right: Node


@dataclass
class Not(Node):
    operand: Node


# --- parser ---------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, source: str):
        self.tokens = tokenize(source)
        self.pos = 0

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def at(self, *texts: str) -> bool:
        token = self.peek()
        return token.kind in ("op", "name") and token.text in texts

    def take(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, text: str) -> Token:
        if not self.at(text):
            raise self.error(f"expected {text!r}")
        return self.take()

    def error(self, what: str) -> ExpressionError:
        token = self.peek()
        found = "the end" if token.kind == "end" else repr(token.text)
        return ExpressionError(f"{what}, found {found} at column {token.column}")

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "end":
            raise self.error("expected the end of the expression")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at("or"):
            self.take()
            node = Logical("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at("and"):
            self.take()
            node = Logical("and", node, self.not_expr())
        return node

    def not_expr(self) -> Node:
        if self.at("not"):
            self.take()
            return Not(self.not_expr())
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        if self.at(*COMPARISONS, "=="):
            op = self.take().text
            return Compare("=" if op == "==" else op, left, self.additive())
        if self.at("in") or (self.at("not") and self.peek(1).text == "in"):
            negated = self.take().text == "not"
            if negated:
                self.take()
            return InList(left, self.literal_list(), negated)
        if self.at("is"):
            self.take()
            negated = self.at("not")
            if negated:
                self.take()
            self.expect("empty")
            if not isinstance(left, Answer):
                raise ExpressionError("'is empty' applies to an answer key, e.g. `phone is empty`")
            return IsEmpty(left.key, negated)
        if self.at("matches"):
            self.take()
            token = self.take()
            if token.kind != "string":
                raise ExpressionError(f"'matches' needs a quoted regular expression at column {token.column}")
            return Matches(left, _unquote(token.text))
        return left

    def literal_list(self) -> list[Literal]:
        self.expect("[")
        values = [self.literal()]
        while self.at(","):
            self.take()
            values.append(self.literal())
        self.expect("]")
        return values

    def literal(self) -> Literal:
        node = self.unary()
        if isinstance(node, Negate) and isinstance(node.operand, Literal) and node.operand.kind == NUMBER:
            return Literal(-node.operand.value, NUMBER)
        if not isinstance(node, Literal):
            raise ExpressionError("a list after 'in' holds literal values only, e.g. [\"pune\", \"nagpur\"]")
        return node

    def additive(self) -> Node:
        node = self.term()
        while self.at("+", "-"):
            op = self.take().text
            node = Arithmetic(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.at("*", "/"):
            op = self.take().text
            node = Arithmetic(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.at("-"):
            self.take()
            return Negate(self.unary())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "number":
            self.take()
            return Literal(Decimal(token.text), NUMBER)
        if token.kind == "string":
            self.take()
            return Literal(_unquote(token.text), TEXT)
        if self.at("("):
            self.take()
            node = self.or_expr()
            self.expect(")")
            return node
        if token.kind != "name":
            raise self.error("expected a value, an answer key or '('")
        name = self.take().text
        if name in ("true", "false"):
            return Literal(name == "true", BOOLEAN)
        if name == "today":
            return Today()
        if name in ("date", "count"):
            self.expect("(")
            arg = self.take()
            self.expect(")")
            if name == "date":
                return _date_literal(arg)
            if arg.kind != "name" or arg.text in KEYWORDS:
                raise ExpressionError(f"count() takes a multi-choice answer key, at column {arg.column}")
            return Count(arg.text)
        if name in KEYWORDS:
            raise ExpressionError(f"{name!r} cannot start a value, at column {token.column}")
        return Answer(name)


def _date_literal(token: Token) -> Literal:
    text = _unquote(token.text) if token.kind == "string" else None
    try:
        if text is None or not ASCII_DATE.fullmatch(text):
            raise ValueError
        return Literal(dt.date.fromisoformat(text), DATE)
    except ValueError:
        raise ExpressionError(f'date() takes a quoted calendar date like date("2026-01-31"), at column {token.column}') from None


def parse(source: str) -> Node:
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("the expression is empty")
    return _Parser(source).parse()


# --- type checking --------------------------------------------------------------------------------------

def _describe(node: Node) -> str:
    if isinstance(node, Answer):
        return f"{node.type} answer {node.key!r}"
    if isinstance(node, Literal):
        return f"the {node.kind} {node.value!r}" if node.kind != NUMBER else f"the number {node.value}"
    return f"a {node.type} expression"


def typecheck(node: Node, questions: dict[str, dict]) -> Node:
    """Annotate every node with its type; raise ExpressionError at the first thing that cannot work.

    The whole expression must be true or false: it states what must hold for a response.
    """
    _check(node, questions)
    if node.type != BOOLEAN:
        raise ExpressionError(f"the expression must be a condition (true or false), not {_describe(node)}")
    return node


def _question(key: str, questions: dict[str, dict]) -> dict:
    if key not in questions:
        raise ExpressionError(f"unknown answer key {key!r} (the form has: {', '.join(sorted(questions))})")
    return questions[key]


def _check(node: Node, questions: dict[str, dict]) -> None:
    if isinstance(node, Literal):
        node.type = node.kind
    elif isinstance(node, Today):
        node.type = DATE
    elif isinstance(node, Answer):
        node.answer_type = ANSWER_TYPES[_question(node.key, questions)["type"]]
        if node.answer_type == CHOICES:
            raise ExpressionError(f"multi-choice answer {node.key!r} can only be used as count({node.key}) "
                                  f"or with 'is empty'")
        node.type = node.answer_type
    elif isinstance(node, Count):
        if _question(node.key, questions)["type"] != "multi_choice":
            raise ExpressionError(f"count() needs a multi-choice answer; {node.key!r} is "
                                  f"{questions[node.key]['type']}")
        node.type = NUMBER
    elif isinstance(node, IsEmpty):
        node.answer_type = ANSWER_TYPES[_question(node.key, questions)["type"]]
        node.type = BOOLEAN
    elif isinstance(node, Negate):
        _check(node.operand, questions)
        _require(node.operand, NUMBER, "'-'")
        node.type = NUMBER
    elif isinstance(node, Arithmetic):
        _check(node.left, questions)
        _check(node.right, questions)
        _require(node.left, NUMBER, f"'{node.op}'")
        _require(node.right, NUMBER, f"'{node.op}'")
        node.type = NUMBER
    elif isinstance(node, Compare):
        _check(node.left, questions)
        _check(node.right, questions)
        if node.left.type != node.right.type:
            raise ExpressionError(f"'{node.op}' compares {_describe(node.left)} with {_describe(node.right)}")
        if node.op not in ("=", "!=") and node.left.type not in ORDERED_TYPES:
            raise ExpressionError(f"'{node.op}' needs numbers, text or dates; {_describe(node.left)} is not ordered")
        for side, other in ((node.left, node.right), (node.right, node.left)):
            _check_choice_value(side, [other], questions)
        node.type = BOOLEAN
    elif isinstance(node, InList):
        _check(node.operand, questions)
        for value in node.values:
            _check(value, questions)
            if value.type != node.operand.type:
                raise ExpressionError(f"'in' compares {_describe(node.operand)} with {_describe(value)}")
        _check_choice_value(node.operand, node.values, questions)
        node.type = BOOLEAN
    elif isinstance(node, Matches):
        _check(node.operand, questions)
        _require(node.operand, TEXT, "'matches'")
        try:
            node.python_pattern, node.sql_pattern = translate(node.pattern)
        except RegexError as err:
            raise ExpressionError(f"invalid regular expression {node.pattern!r}: {err}") from None
        node.type = BOOLEAN
    elif isinstance(node, (Logical, Not)):
        operands = (node.left, node.right) if isinstance(node, Logical) else (node.operand,)
        for operand in operands:
            _check(operand, questions)
            _require(operand, BOOLEAN, f"'{node.op if isinstance(node, Logical) else 'not'}'")
        node.type = BOOLEAN
    else:  # pragma: no cover - the parser makes no other nodes
        raise TypeError(node)


def _require(node: Node, expected: str, where: str) -> None:
    if node.type != expected:
        raise ExpressionError(f"{where} needs a {expected}, not {_describe(node)}")


def _check_choice_value(node: Node, literals: list[Node], questions: dict[str, dict]) -> None:
    """`city = "puna"` is a typo that would never match: name the offered choices instead."""
    if not isinstance(node, Answer) or questions[node.key]["type"] != "single_choice":
        return
    offered = [c["value"] for c in questions[node.key].get("choices", [])]
    for literal in literals:
        if isinstance(literal, Literal) and literal.value not in offered:
            raise ExpressionError(f"{literal.value!r} is not a choice of {node.key!r} (choices: {', '.join(offered)})")


def answers_read(node: Node) -> set[str]:
    """Keys whose value the expression uses; `is empty` and count() are defined on empty answers too."""
    if isinstance(node, Answer):
        return {node.key}
    keys: set[str] = set()
    for child in _children(node):
        keys |= answers_read(child)
    return keys


def typed_answers(node: Node) -> dict[str, str]:
    """Every answer key the expression touches (read, counted or tested for emptiness) with its type."""
    found: dict[str, str] = {}
    if isinstance(node, (Answer, IsEmpty)):
        found[node.key] = node.answer_type
    elif isinstance(node, Count):
        found[node.key] = CHOICES
    for child in _children(node):
        found.update(typed_answers(child))
    return found


def _children(node: Node) -> list[Node]:
    if isinstance(node, (Arithmetic, Compare, Logical)):
        return [node.left, node.right]
    if isinstance(node, (Negate, Not)):
        return [node.operand]
    if isinstance(node, InList):
        return [node.operand, *node.values]
    if isinstance(node, Matches):
        return [node.operand]
    return []

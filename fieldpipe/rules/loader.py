"""Rules documents (stored versions as JSON, or YAML files as authored), checked against a form's questions.

A document is checked as a whole before any data is touched; every problem is reported with where it
came from (`acme/household-survey rules` or the file), the rule id and what is wrong (`RulesFileError`).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fieldpipe.config import Settings
from fieldpipe.rules.expression import ANSWER_TYPES, CHOICES, NUMBER, TEXT, ExpressionError, Node, parse, typecheck
from fieldpipe.rules.statistics import STATISTICAL, check_arguments

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SEVERITIES = ("error", "warning")
NOTIFY = ("collector", "none")
RULE_FIELDS = {"id", "expression", "message", "severity", "notify", "description"}
EXPECTATION_FIELDS = {"id", "expectation", "kwargs", "message", "severity", "notify", "description"}
FILE_FIELDS = {"form", "rules", "expectations"}
MAX_ENTRIES = 200  # rules and expectations of one form: all of them compile into one SQL statement
MAX_EXPRESSION = 1000  # characters; keeps every executor's recursion over the expression shallow
TEMPLATE_PART = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")

# Column expectations we run (GX Core names), the extra arguments each takes, and the answer types it fits.
EXPECTATIONS: dict[str, tuple[set[str], tuple[str, ...]]] = {
    "expect_column_values_to_be_between": ({"min_value", "max_value", "strict_min", "strict_max"}, (NUMBER,)),
    "expect_column_values_to_not_be_null": (set(), tuple(t for t in set(ANSWER_TYPES.values()) if t != CHOICES)),
    "expect_column_values_to_be_in_set": ({"value_set"}, (NUMBER, TEXT)),
    "expect_column_values_to_not_be_in_set": ({"value_set"}, (NUMBER, TEXT)),
    "expect_column_values_to_match_regex": ({"regex"}, (TEXT,)),
    "expect_column_value_lengths_to_be_between": ({"min_value", "max_value"}, (TEXT,)),
    "expect_column_values_to_be_unique": (set(), (NUMBER, TEXT)),
}


class RulesFileError(ValueError):
    """A rules document that cannot be used; `problems` lists each as "rule 'id': what is wrong" (RuleProblem)."""

    def __init__(self, path: Path | str, problems: list[str]):
        self.path, self.problems = str(path), problems
        super().__init__(f"{self.path}: " + "; ".join(problems))

    def report(self) -> str:
        return "\n".join(f"{self.path}: {p}" for p in self.problems)


@dataclass(frozen=True)
class Rule:
    id: str
    expression: str
    tree: Node
    message_parts: list[tuple[str, str]]
    severity: str
    notify: str


@dataclass(frozen=True)
class Expectation:
    id: str
    expectation: str
    column: str
    column_type: str
    kwargs: dict
    message_parts: list[tuple[str, str]]
    severity: str
    notify: str


@dataclass(frozen=True)
class RuleSet:
    path: str
    fingerprint: str
    rules: list[Rule] = field(default_factory=list)
    expectations: list[Expectation] = field(default_factory=list)
    version: int | None = None  # the stored rules version it was read from


def rules_dir() -> Path:
    """FIELDPIPE_RULES_DIR, else include/rules in the repository."""
    return Settings.from_env().rules_dir


def parse_template(template: Any, questions: dict[str, dict]) -> list[tuple[str, str]]:
    """"Savings {monthly_savings} exceed ..." -> [("answer", "monthly_savings"), ("text", " exceed ...")]."""
    if not isinstance(template, str) or not template.strip():
        raise ExpressionError("message must be a non-empty text")
    parts: list[tuple[str, str]] = []
    for match in TEMPLATE_PART.finditer(template):
        token = match.group()
        if token in ("{{", "}}"):
            parts.append(("text", token[0]))
        elif match.group(1) is not None:
            key = match.group(1).strip()
            if key not in questions:
                raise ExpressionError(f"message quotes unknown answer key {{{key}}}")
            parts.append(("answer", key))
        elif token in ("{", "}"):
            raise ExpressionError(f"message has an unmatched {token!r} (write {token * 2} for a literal brace)")
        else:
            parts.append(("text", token))
    return parts


def _common(entry: dict, allowed: set[str], seen: set[str], where: str) -> tuple[str, str, list[str]]:
    """(rule id, how messages name the entry, problems) for the fields rules and expectations share."""
    problems = []
    rule_id = entry.get("id")
    label = f"rule {rule_id!r}" if where.startswith("rules") else f"expectation {rule_id!r}"
    if not isinstance(rule_id, str) or not RULE_ID.fullmatch(rule_id):
        problems.append(f"{where}: id must match {RULE_ID.pattern}")
        rule_id = label = where
    elif rule_id in seen:
        problems.append(f"{label}: id is used twice")
    seen.add(rule_id)
    for extra in sorted(set(entry) - allowed):
        problems.append(f"{label}: unknown field {extra!r} (allowed: {', '.join(sorted(allowed))})")
    if entry.get("severity", "error") not in SEVERITIES:
        problems.append(f"{label}: severity must be one of {', '.join(SEVERITIES)}")
    if entry.get("notify", "none") not in NOTIFY:
        problems.append(f"{label}: notify must be one of {', '.join(NOTIFY)}")
    return rule_id, label, problems


def _shown(expression: Any) -> str:
    text = repr(expression)
    return text if len(text) <= 120 else text[:117] + "..."


def _rule(entry: dict, questions: dict, seen: set[str], where: str) -> tuple[Rule | None, list[str]]:
    rule_id, label, problems = _common(entry, RULE_FIELDS, seen, where)
    tree = parts = None
    expression = entry.get("expression")
    try:
        if isinstance(expression, str) and len(expression) > MAX_EXPRESSION:
            raise ExpressionError(f"is longer than {MAX_EXPRESSION} characters; split it into several rules")
        tree = typecheck(parse(expression), questions)
    except ExpressionError as err:
        problems.append(f"{label}: expression {_shown(expression)}: {err}")
    except RecursionError:
        problems.append(f"{label}: expression {_shown(expression)}: is nested too deeply")
    try:
        parts = parse_template(entry.get("message"), questions)
    except ExpressionError as err:
        problems.append(f"{label}: {err}")
    if problems:
        return None, problems
    return Rule(rule_id, entry["expression"], tree, parts, entry.get("severity", "error"), entry.get("notify", "none")), []


def _expectation(entry: dict, questions: dict, seen: set[str], where: str) -> tuple[Expectation | None, list[str]]:
    rule_id, label, problems = _common(entry, EXPECTATION_FIELDS, seen, where)
    name, kwargs = entry.get("expectation"), entry.get("kwargs", {})
    if name not in EXPECTATIONS and name not in STATISTICAL:
        problems.append(f"{label}: expectation must be one of {', '.join(sorted([*EXPECTATIONS, *STATISTICAL]))}")
        return None, problems
    if not isinstance(kwargs, dict):
        return None, problems + [f"{label}: kwargs must be a mapping"]
    statistical = name in STATISTICAL
    allowed, column_types = STATISTICAL[name] if statistical else EXPECTATIONS[name]
    common = {"column"} if statistical else {"column", "mostly"}
    column = kwargs.get("column")
    if not isinstance(column, str) or column not in questions:
        problems.append(f"{label}: kwargs.column must be an answer key of the form, not {column!r}")
    elif ANSWER_TYPES[questions[column]["type"]] not in column_types:
        problems.append(f"{label}: {name} does not apply to {questions[column]['type']} answer {column!r}")
    for extra in sorted(set(kwargs) - allowed - common, key=str):
        problems.append(f"{label}: {name} takes no argument {extra!r} (it takes: {', '.join(sorted(common | allowed))})")
    if statistical:
        problems += [f"{label}: {problem}" for problem in check_arguments(name, kwargs)]
    mostly = kwargs.get("mostly", 1)
    if isinstance(mostly, bool) or not isinstance(mostly, (int, float)) or not 0 <= mostly <= 1:
        problems.append(f"{label}: mostly must be a number from 0 to 1")
    if "regex" in kwargs:
        try:
            re.compile(kwargs["regex"])
        except (re.error, TypeError) as err:
            problems.append(f"{label}: invalid regex {kwargs['regex']!r}: {err}")
    if "value_set" in kwargs and not isinstance(kwargs["value_set"], list):
        problems.append(f"{label}: value_set must be a list")
    for bound in ("min_value", "max_value"):
        value = kwargs.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            problems.append(f"{label}: {bound} must be a number")
    if name.endswith("_between") and kwargs.get("min_value") is None and kwargs.get("max_value") is None:
        problems.append(f"{label}: give min_value, max_value or both")
    try:
        parts = parse_template(entry.get("message"), questions)
    except ExpressionError as err:
        problems.append(f"{label}: {err}")
    if problems:
        return None, problems
    return Expectation(rule_id, name, column, ANSWER_TYPES[questions[column]["type"]], {k: v for k, v in kwargs.items() if k != "column"}, parts,
                       entry.get("severity", "error"), entry.get("notify", "none")), []




class RuleProblem(str):
    """One problem of a rules document: reads as "rule 'id': what is wrong" and knows the rule id and where
    the entry is (`rules[2]`), so the API can list each problem with its rule id."""

    rule_id: str | None
    where: str

    def __new__(cls, text: str, rule_id: str | None = None, where: str = "") -> "RuleProblem":
        problem = super().__new__(cls, text)
        problem.rule_id, problem.where = rule_id, where
        return problem


def json_document(document: Any, source: Path | str) -> dict:
    """The document as stored: exactly the JSON the API serves, `rules` and `expectations` always present.

    YAML can hold values JSON cannot (dates, NaN); such a document is refused rather than quietly changed."""
    try:
        text = json.dumps(document, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as err:
        raise RulesFileError(source, [RuleProblem(f"holds a value JSON cannot represent ({err}); quote it")]) from None
    stored = json.loads(text)
    if isinstance(stored, dict):
        stored.setdefault("rules", [])
        stored.setdefault("expectations", [])
    return stored


def load_document(document: Any, questions: list[dict], source: Path | str, form_slug: str | None = None,
                  fingerprint_text: str | None = None, version: int | None = None) -> RuleSet:
    """Check a rules document (parsed YAML or JSON) against the questions; RulesFileError lists everything wrong."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise RulesFileError(source, [RuleProblem("must be a mapping with 'rules' and/or 'expectations'")])
    problems = [RuleProblem(f"unknown top-level field {k!r} (allowed: {', '.join(sorted(FILE_FIELDS))})", where=str(k))
                for k in sorted(set(document) - FILE_FIELDS, key=str)]
    if form_slug and document.get("form", form_slug) != form_slug:
        problems.append(RuleProblem(f"form is {document['form']!r} but the rules are for form {form_slug!r}",
                                    where="form"))
    by_key = {q["key"]: q for q in questions}
    seen: set[str] = set()
    rules, expectations = [], []
    for section, build, out in (("rules", _rule, rules), ("expectations", _expectation, expectations)):
        entries = document.get(section) or []
        if not isinstance(entries, list):
            problems.append(RuleProblem(f"{section} must be a list", where=section))
            continue
        for index, entry in enumerate(entries):
            where = f"{section}[{index}]"
            if not isinstance(entry, dict):
                problems.append(RuleProblem(f"{where}: must be a mapping", where=where))
                continue
            item, item_problems = build(entry, by_key, seen, where)
            rule_id = entry.get("id") if isinstance(entry.get("id"), str) and RULE_ID.fullmatch(entry["id"]) else None
            problems += [RuleProblem(p, rule_id, where) for p in item_problems]
            if item is not None:
                out.append(item)
    total = sum(len(document.get(s) or []) for s in ("rules", "expectations") if isinstance(document.get(s), list))
    if total > MAX_ENTRIES:
        problems.append(RuleProblem(f"has {total} rules and expectations; at most {MAX_ENTRIES} per form"))
    if problems:
        raise RulesFileError(source, problems)
    if version is not None:  # stored rules: the version says what changed
        return RuleSet(str(source), f"version:{version}", rules, expectations, version)
    text = fingerprint_text if fingerprint_text is not None else json.dumps(document, sort_keys=True)
    return RuleSet(str(source), hashlib.sha256(text.encode()).hexdigest(), rules, expectations)


def load_text(text: str, questions: list[dict], path: Path | str, form_slug: str | None = None) -> RuleSet:
    """Check a rules file's YAML content against the questions; RulesFileError lists everything wrong."""
    return load_document(parse_yaml(text, path), questions, path, form_slug, fingerprint_text=text)


def parse_yaml(text: str, path: Path | str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RulesFileError(path, [RuleProblem(f"not valid YAML: {err}")]) from None


def read_file(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RulesFileError(path, [RuleProblem(f"is not UTF-8 text: {err}")]) from None


def read_document(path: Path) -> Any:
    """A rules file's parsed YAML (the authoring format of a stored document)."""
    return parse_yaml(read_file(path), path)


def load_file(path: Path, questions: list[dict]) -> RuleSet:
    return load_text(read_file(path), questions, path, form_slug=path.stem)

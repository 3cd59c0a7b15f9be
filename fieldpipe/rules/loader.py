"""Rule files: `<rules dir>/<form-slug>.yaml`, read, checked against a form's questions, and cached.

A file is checked as a whole before any data is touched; every problem is reported with the file,
the rule id and what is wrong (`RulesFileError`).
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

RULE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
SEVERITIES = ("error", "warning")
NOTIFY = ("collector", "none")
RULE_FIELDS = {"id", "expression", "message", "severity", "notify", "description"}
EXPECTATION_FIELDS = {"id", "expectation", "kwargs", "message", "severity", "notify", "description"}
FILE_FIELDS = {"form", "rules", "expectations"}
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
    """A rules file that cannot be used; `problems` lists each as "rule 'id': what is wrong"."""

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

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.rules] + [e.id for e in self.expectations]

    def by_id(self, rule_id: str) -> Rule | Expectation:
        return next(r for r in [*self.rules, *self.expectations] if r.id == rule_id)


def rules_dir() -> Path:
    """FIELDPIPE_RULES_DIR, else include/rules in the repository."""
    return Settings.from_env().rules_dir


def rules_path(form_slug: str) -> Path:
    return rules_dir() / f"{form_slug}.yaml"


def fingerprint(path: Path) -> str:
    """Identifies the file's content: a changed file means every response is validated again."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "none"


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
    if not isinstance(rule_id, str) or not RULE_ID.match(rule_id):
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


def _rule(entry: dict, questions: dict, seen: set[str], where: str) -> tuple[Rule | None, list[str]]:
    rule_id, label, problems = _common(entry, RULE_FIELDS, seen, where)
    tree = parts = None
    try:
        tree = typecheck(parse(entry.get("expression")), questions)
    except ExpressionError as err:
        problems.append(f"{label}: expression {entry.get('expression')!r}: {err}")
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
    if name not in EXPECTATIONS:
        problems.append(f"{label}: expectation must be one of {', '.join(sorted(EXPECTATIONS))}")
        return None, problems
    if not isinstance(kwargs, dict):
        return None, problems + [f"{label}: kwargs must be a mapping"]
    allowed, column_types = EXPECTATIONS[name]
    column = kwargs.get("column")
    if column not in questions:
        problems.append(f"{label}: kwargs.column must be an answer key of the form, not {column!r}")
    elif ANSWER_TYPES[questions[column]["type"]] not in column_types:
        problems.append(f"{label}: {name} does not apply to {questions[column]['type']} answer {column!r}")
    for extra in sorted(set(kwargs) - allowed - {"column", "mostly"}):
        problems.append(f"{label}: {name} takes no argument {extra!r} (it takes: column, mostly, {', '.join(sorted(allowed))})")
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


def load_text(text: str, questions: list[dict], path: Path | str, form_slug: str | None = None) -> RuleSet:
    """Check a rules file's content against the questions; RulesFileError lists everything wrong."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RulesFileError(path, [f"not valid YAML: {err}"]) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise RulesFileError(path, ["must be a mapping with 'rules' and/or 'expectations'"])
    problems = [f"unknown top-level field {k!r} (allowed: {', '.join(sorted(FILE_FIELDS))})" for k in sorted(set(document) - FILE_FIELDS)]
    if form_slug and document.get("form", form_slug) != form_slug:
        problems.append(f"form is {document['form']!r} but the file is named for {form_slug!r}")
    by_key = {q["key"]: q for q in questions}
    seen: set[str] = set()
    rules, expectations = [], []
    for section, build, out in (("rules", _rule, rules), ("expectations", _expectation, expectations)):
        entries = document.get(section) or []
        if not isinstance(entries, list):
            problems.append(f"{section} must be a list")
            continue
        for index, entry in enumerate(entries):
            where = f"{section}[{index}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: must be a mapping")
                continue
            item, item_problems = build(entry, by_key, seen, where)
            problems += item_problems
            if item is not None:
                out.append(item)
    if problems:
        raise RulesFileError(path, problems)
    return RuleSet(str(path), hashlib.sha256(text.encode()).hexdigest(), rules, expectations)


def load_file(path: Path, questions: list[dict]) -> RuleSet:
    try:
        # Decoding keeps line endings, so the fingerprint equals `fingerprint(path)`.
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise RulesFileError(path, [f"is not UTF-8 text: {err}"]) from None
    return load_text(text, questions, path, form_slug=path.stem)


_cache: dict[tuple, RuleSet] = {}


def rules_for_form(form_slug: str, questions: list[dict]) -> RuleSet:
    """The checked rules of a form (an empty set when it has no file), reloaded when the file changes."""
    path = rules_path(form_slug)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return RuleSet(str(path), "none")
    key = (str(path), stat.st_mtime_ns, stat.st_size, json.dumps(questions, sort_keys=True))
    if key not in _cache:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = load_file(path, questions)
    return _cache[key]

"""Business rules as data: stored per form of an organization, versioned, evaluated set-based in SQL and
in-process at ingestion.

Where: the database (`rules_versions`, see fieldpipe.rules.store), managed through the API
(`/api/v1/forms/{slug}/rules`) or as YAML files pushed with `fieldpipe rules push --org ORG FILE`.
docs/rules.md is the user guide.

A document has `rules` (expressions) and `expectations` (GX Core column expectations and statistical
checks, fieldpipe.rules.statistics):

    rules:
      - id: savings-within-income            # [a-z0-9][a-z0-9_-]*, unique in the file
        expression: monthly_savings <= monthly_income   # what must hold
        message: "Savings {monthly_savings} exceed income {monthly_income}"
        severity: error                      # error | warning (default error)
        notify: collector                    # collector | none (default none)
    expectations:
      - id: income-plausible
        expectation: expect_column_values_to_be_between
        kwargs: {column: monthly_income, min_value: 0, max_value: 10000000}
        message: "Income {monthly_income} is not plausible"

Expression grammar (lowest precedence first):

    expr       := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := sum [ ("=" | "==" | "!=" | "<" | "<=" | ">" | ">=") sum
                      | ["not"] "in" "[" literal ("," literal)* "]"
                      | "is" ["not"] "empty"            (left side: an answer key)
                      | "matches" STRING ]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | STRING | "true" | "false" | "today" | "date(" STRING ")"
                | "count(" KEY ")" | KEY | "(" expr ")"

Types: integer and decimal answers are numbers; text, long text, single choice, phone and email are
text; date answers are dates; boolean answers are true/false; a multi-choice answer can only be
counted (`count(problems)`, 0 when empty) or tested with `is empty`. Arithmetic takes numbers;
`=`/`!=` any two values of one type; ordering numbers, dates and text (by code point); `in` a list of
literals of the operand's type; `matches` text (see fieldpipe.rules.regex for the supported regex
subset). Numbers are exact decimals; `a / b` is rounded half away from zero to 10 places, and
dividing by zero gives "unknown". `today` is the current date in UTC.

Checked at load, before any data is touched: YAML syntax, fields, expression syntax, unknown answer
keys, type mismatches (e.g. comparing text with a number), choice values that the question does not
offer, regexes outside the subset, count() on anything
but a multi-choice answer, message templates quoting unknown keys. Errors name file, rule id and what
is wrong (RulesFileError).

Missing answers: a rule whose expression reads an empty answer (other than through `is empty`,
`is not empty` or `count()`) is not evaluated for that response: it neither passes nor is violated.
An answer of the wrong type (from another form version) counts as empty. A rule is violated only
when its expression is false; an unknown result (division by zero) is not a violation. SQL gets this
from `CASE WHEN <answers present> THEN <expr> END IS FALSE`; the in-process executor implements the
same three-valued logic, and a hypothesis test checks that both agree. A rule whose SQL fails at run
time is reported as broken (the DAG task fails naming it, after the other rules' flags are written);
it never counts as a violation.

Message templates quote answers as `{key}` (`{{` and `}}` for braces); an empty answer quotes as "",
a multi-choice answer as its values joined by ", ".

At ingestion `warnings_for` evaluates the expression rules against each posted submission (column
expectations need a whole batch and run only in the DAG). Rules flag, never reject.
"""

from __future__ import annotations

import logging

import psycopg

from fieldpipe.rules.inprocess import VIOLATED, render_message, verdict
from fieldpipe.rules.loader import RulesFileError
from fieldpipe.rules.store import applies, cached_ruleset

log = logging.getLogger(__name__)


def warnings_for(conn: psycopg.Connection, form: dict, answer_sets: list[dict]) -> list[list[dict]]:
    """For each submission's answers, the expression rules it violates: [{rule_id, severity, message}].

    No warnings when the form has no rules or its rules task is disabled. The form's rules in force are looked up
    once for all of them (a batch holds up to 1,000 submissions), from this process's cache when the version
    is unchanged. Rules that no longer fit the form's questions
    give no warnings (and a logged error): ingestion never fails because of rules.
    """
    if not applies(conn, form):
        return [[] for _ in answer_sets]
    try:
        ruleset = cached_ruleset(conn, form)
    except RulesFileError as err:
        log.error("warnings skipped, the form's rules are broken: %s", err)
        return [[] for _ in answer_sets]
    return [
        [{"rule_id": rule.id, "severity": rule.severity, "message": render_message(rule.message_parts, answers)}
         for rule in ruleset.rules
         if verdict(rule.tree, answers) == VIOLATED]
        for answers in answer_sets
    ]

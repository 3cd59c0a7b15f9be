"""A rules document is checked whole before it is used: every problem is listed, word for word, with the rule id
it is about and where it is (what `PUT .../rules` answers and `fieldpipe rules check` prints)."""

from __future__ import annotations

import pytest

from fieldpipe.rules.loader import MAX_ENTRIES, MAX_EXPRESSION, RulesFileError, load_document, load_text
from tests.helpers import HOUSEHOLD_QUESTIONS

OK_RULE = {"id": "ok", "expression": "monthly_savings <= monthly_income", "message": "x"}
BETWEEN = {"id": "income", "expectation": "expect_column_values_to_be_between",
           "kwargs": {"column": "monthly_income", "min_value": 0}, "message": "x"}
EXPECTATION_NAMES = ", ".join(sorted([
    "expect_column_values_to_be_between", "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set",
    "expect_column_values_to_not_be_in_set", "expect_column_values_to_match_regex",
    "expect_column_value_lengths_to_be_between", "expect_column_values_to_be_unique",
    "expect_column_values_within_median_deviations", "expect_collector_answers_to_vary"]))


def problems_of(document, form_slug=None) -> list[tuple]:
    with pytest.raises(RulesFileError) as refused:
        load_document(document, HOUSEHOLD_QUESTIONS, "acme/household-survey rules", form_slug=form_slug)
    assert str(refused.value) == "acme/household-survey rules: " + "; ".join(refused.value.problems)
    return [(str(p), p.rule_id, p.where) for p in refused.value.problems]


@pytest.mark.parametrize("document,problems", [
    ([OK_RULE], [("must be a mapping with 'rules' and/or 'expectations'", None, "")]),
    ({"rules": [OK_RULE], "owner": "x", "7": 1}, [
        ("unknown top-level field '7' (allowed: expectations, form, rules)", None, "7"),
        ("unknown top-level field 'owner' (allowed: expectations, form, rules)", None, "owner")]),
    ({"rules": "ok"}, [("rules must be a list", None, "rules")]),
    ({"expectations": {"id": "x"}}, [("expectations must be a list", None, "expectations")]),
    ({"rules": ["ok"]}, [("rules[0]: must be a mapping", None, "rules[0]")]),
    ({"rules": [OK_RULE, {**OK_RULE, "expression": "monthly_income > 0"}]},
     [("rule 'ok': id is used twice", "ok", "rules[1]")]),
    ({"rules": [OK_RULE], "expectations": [{**BETWEEN, "id": "ok"}]},
     [("expectation 'ok': id is used twice", "ok", "expectations[0]")]),
    ({"rules": [{**OK_RULE, "id": "Upper"}]},
     [("rules[0]: id must match ^[a-z0-9][a-z0-9_-]{0,62}$", None, "rules[0]")]),
    ({"rules": [{**OK_RULE, "id": 7}]}, [("rules[0]: id must match ^[a-z0-9][a-z0-9_-]{0,62}$", None, "rules[0]")]),
    ({"rules": [{**OK_RULE, "when": "always", "column": "x"}]}, [
        ("rule 'ok': unknown field 'column' (allowed: description, expression, id, message, notify, severity)",
         "ok", "rules[0]"),
        ("rule 'ok': unknown field 'when' (allowed: description, expression, id, message, notify, severity)",
         "ok", "rules[0]")]),
    ({"rules": [{**OK_RULE, "severity": "fatal", "notify": "admin"}]}, [
        ("rule 'ok': severity must be one of error, warning", "ok", "rules[0]"),
        ("rule 'ok': notify must be one of collector, none", "ok", "rules[0]")]),
    ({"rules": [{**OK_RULE, "message": " "}]}, [("rule 'ok': message must be a non-empty text", "ok", "rules[0]")]),
    ({"rules": [{**OK_RULE, "message": "Savings {monthly_savngs}"}]},
     [("rule 'ok': message quotes unknown answer key {monthly_savngs}", "ok", "rules[0]")]),
    ({"rules": [{**OK_RULE, "message": "Savings {monthly_savings"}]},
     [("rule 'ok': message has an unmatched '{' (write {{ for a literal brace)", "ok", "rules[0]")]),
    ({"rules": [{**OK_RULE, "message": "Savings } too high"}]},
     [("rule 'ok': message has an unmatched '}' (write }} for a literal brace)", "ok", "rules[0]")]),
    ({"expectations": [{**BETWEEN, "expectation": "expect_magic"}]},
     [(f"expectation 'income': expectation must be one of {EXPECTATION_NAMES}", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": ["monthly_income"]}]},
     [("expectation 'income': kwargs must be a mapping", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_incme", "min_value": 0}}]},
     [("expectation 'income': kwargs.column must be an answer key of the form, not 'monthly_incme'", "income",
       "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "name", "min_value": 0}}]},
     [("expectation 'income': expect_column_values_to_be_between does not apply to text answer 'name'", "income",
       "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income", "min_value": 0, "regex": "x"}}]},
     [("expectation 'income': expect_column_values_to_be_between takes no argument 'regex' (it takes: column, "
       "max_value, min_value, mostly, strict_max, strict_min)", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income", "min_value": 0, "mostly": 1.5}}]},
     [("expectation 'income': mostly must be a number from 0 to 1", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income", "min_value": 0, "mostly": True}}]},
     [("expectation 'income': mostly must be a number from 0 to 1", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income", "min_value": "0", "max_value": True}}]}, [
        ("expectation 'income': min_value must be a number", "income", "expectations[0]"),
        ("expectation 'income': max_value must be a number", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income"}}]},
     [("expectation 'income': give min_value, max_value or both", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "expectation": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "local_word", "value_set": "pani"}}]},
     [("expectation 'income': value_set must be a list", "income", "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "expectation": "expect_column_values_to_match_regex",
                        "kwargs": {"column": "name", "regex": "("}}]},
     [("expectation 'income': invalid regex '(': missing ), unterminated subpattern at position 0", "income",
       "expectations[0]")]),
    ({"expectations": [{**BETWEEN, "message": None}]},
     [("expectation 'income': message must be a non-empty text", "income", "expectations[0]")]),
    ({"rules": [{**OK_RULE, "id": f"r{n}"} for n in range(MAX_ENTRIES)], "expectations": [BETWEEN]},
     [(f"has {MAX_ENTRIES + 1} rules and expectations; at most {MAX_ENTRIES} per form", None, "")]),
])
def test_every_problem_of_a_document_is_listed_word_for_word(document, problems):
    assert problems_of(document) == problems


def test_a_long_expression_is_refused_shown_cut_to_120_characters():
    expression = "monthly_income > " + "1 + " * 300 + "1"
    [(problem, rule_id, where)] = problems_of({"rules": [{**OK_RULE, "expression": expression}]})
    assert problem == (f"rule 'ok': expression {repr(expression)[:117]}...: is longer than {MAX_EXPRESSION} "
                       "characters; split it into several rules")
    assert (rule_id, where) == ("ok", "rules[0]")
    at_most = "monthly_income > 0" + " " * (MAX_EXPRESSION - len("monthly_income > 0"))
    assert load_document({"rules": [{**OK_RULE, "expression": at_most}]}, HOUSEHOLD_QUESTIONS, "x").rules[0].id == "ok"


def test_a_document_for_another_form_and_files_that_are_not_yaml_or_json_say_so():
    assert problems_of({"form": "water-point-audit", "rules": [OK_RULE]}, form_slug="household-survey") == [
        ("form is 'water-point-audit' but the rules are for form 'household-survey'", None, "form")]
    assert load_document({"form": "household-survey", "rules": [OK_RULE]}, HOUSEHOLD_QUESTIONS, "x",
                         form_slug="household-survey").rules[0].id == "ok"
    with pytest.raises(RulesFileError) as refused:
        load_text("rules: [", HOUSEHOLD_QUESTIONS, "household-survey.yaml")
    assert refused.value.problems[0].startswith("not valid YAML: ")
    assert load_document(None, HOUSEHOLD_QUESTIONS, "x").rules == []  # an empty file: no rules


def test_the_same_text_gives_the_same_fingerprint_and_a_stored_version_its_version():
    text = "rules:\n  - {id: ok, expression: monthly_savings <= monthly_income, message: x}\n"
    first, again = (load_text(text, HOUSEHOLD_QUESTIONS, "a.yaml") for _ in range(2))
    assert first.fingerprint == again.fingerprint and len(first.fingerprint) == 64
    assert load_text(text + "# changed\n", HOUSEHOLD_QUESTIONS, "a.yaml").fingerprint != first.fingerprint
    stored = load_document({"rules": [OK_RULE]}, HOUSEHOLD_QUESTIONS, "acme/x rules", version=4)
    assert (stored.fingerprint, stored.version, stored.path) == ("version:4", 4, "acme/x rules")
    [rule] = stored.rules
    assert (rule.severity, rule.notify, rule.expression) == ("error", "none", OK_RULE["expression"])


@pytest.mark.parametrize("bounds", [{"min_value": 0}, {"max_value": 100000}, {"min_value": 0, "max_value": 100000}])
def test_a_between_expectation_takes_either_bound_or_both(bounds):
    document = {"expectations": [{**BETWEEN, "kwargs": {"column": "monthly_income", **bounds}}]}
    [expectation] = load_document(document, HOUSEHOLD_QUESTIONS, "x").expectations
    assert expectation.kwargs == bounds


def test_a_pulled_version_is_a_rules_file_that_reads_back_as_the_same_rules():
    import datetime as dt

    from fieldpipe.rules.store import as_yaml

    pulled = {"form": "household-survey", "version": 3, "created_by": "cli:ana",
              "created_at": dt.datetime(2026, 11, 20, 9, 5, tzinfo=dt.timezone.utc),
              "document": {"rules": [{"message": "x", "expression": OK_RULE["expression"], "id": "ok"}],
                           "expectations": [{**BETWEEN, "severity": "warning"}]}}
    text = as_yaml(pulled)
    assert text.splitlines()[0] == ("# rules of form household-survey, version 3, saved by cli:ana at 2026-11-20 09:05 UTC "
                                    "(fieldpipe rules pull)")
    assert "form: household-survey\nrules:\n- id: ok\n  expression: monthly_savings <= monthly_income\n  message: x\n" in text
    ruleset = load_text(text, HOUSEHOLD_QUESTIONS, "household-survey.yaml", form_slug="household-survey")
    assert [r.id for r in ruleset.rules] == ["ok"] and [(e.id, e.severity) for e in ruleset.expectations] == [
        ("income", "warning")]

"""Checking answers against a form version's questions, one function per question type.

An answer that is missing, null, an empty string or an empty list counts as *empty*: allowed
unless the question is required. Checked answers are normalised (phones to E.164, text to NFC)
before they are stored, so equal answers compare equal in SQL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
import unicodedata
from typing import Any, Callable

import phonenumbers

from fieldpipe.problems import FieldError

QUESTION_TYPES = (
    "text", "long_text", "integer", "decimal", "single_choice", "multi_choice",
    "phone", "date", "boolean", "email",
)
CHOICE_TYPES = ("single_choice", "multi_choice")
TEXT_TYPES = ("text", "long_text")
NUMBER_TYPES = ("integer", "decimal")
TEXT_MAX_LENGTH = 1000
LONG_TEXT_MAX_LENGTH = 100_000
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Words are split on white space and punctuation only, so combining marks (Devanagari matras) stay inside words.
WORD_SEPARATORS = re.compile(r"[\s!-/:-@\[-`{-~\u0964\u0965\u2010-\u2027\u00a0-\u00bf]+")


class AnswerError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _text(value: Any, question: dict) -> str:
    if not isinstance(value, str):
        raise AnswerError("type", "must be a string")
    value = unicodedata.normalize("NFC", value)
    max_length = LONG_TEXT_MAX_LENGTH if question["type"] == "long_text" else TEXT_MAX_LENGTH
    if len(value) > max_length:
        raise AnswerError("too_long", f"must be at most {max_length} characters")
    return value


def _integer(value: Any, question: dict) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnswerError("type", "must be an integer")
    return value


def _decimal(value: Any, question: dict) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
        raise AnswerError("type", "must be a number")
    return value


def _choice_values(question: dict) -> set[str]:
    return {c["value"] for c in question.get("choices", [])}


def _single_choice(value: Any, question: dict) -> str:
    if not isinstance(value, str):
        raise AnswerError("type", "must be one choice value (a string)")
    if value not in _choice_values(question):
        raise AnswerError("choice", f"{value!r} is not one of the offered choices")
    return value


def _multi_choice(value: Any, question: dict) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AnswerError("type", "must be a list of choice values")
    unknown = [v for v in value if v not in _choice_values(question)]
    if unknown:
        raise AnswerError("choice", f"{', '.join(map(repr, unknown))} not among the offered choices")
    if len(set(value)) != len(value):
        raise AnswerError("duplicate", "a choice is picked more than once")
    return value


def normalize_phone(value: Any) -> str:
    """E.164 or AnswerError; shared by phone answers, collectors' phones and SMS recipients."""
    if not isinstance(value, str):
        raise AnswerError("type", "must be a phone number string in E.164 form, e.g. +919876543210")
    return _normalize_phone_text(value)


@functools.lru_cache(maxsize=65536)
def _normalize_phone_text(value: str) -> str:
    """Cached: a collector's phone arrives with every one of their submissions, and parsing costs ~60 us."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise AnswerError("phone", "is not a phone number in E.164 form, e.g. +919876543210") from None
    if not phonenumbers.is_valid_number(number):
        raise AnswerError("phone", "is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _phone(value: Any, question: dict) -> str:
    return normalize_phone(value)


def _date(value: Any, question: dict) -> str:
    if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
        raise AnswerError("date", "must be a date YYYY-MM-DD")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise AnswerError("date", "is not a real calendar date") from None
    return value


def _boolean(value: Any, question: dict) -> bool:
    if not isinstance(value, bool):
        raise AnswerError("type", "must be true or false")
    return value


def _email(value: Any, question: dict) -> str:
    if not isinstance(value, str) or not EMAIL_PATTERN.match(value) or len(value) > 320:
        raise AnswerError("email", "is not an email address")
    return value


CHECKS: dict[str, Callable[[Any, dict], Any]] = {
    "text": _text,
    "long_text": _text,
    "integer": _integer,
    "decimal": _decimal,
    "single_choice": _single_choice,
    "multi_choice": _multi_choice,
    "phone": _phone,
    "date": _date,
    "boolean": _boolean,
    "email": _email,
}


def check_answers(answers: Any, questions: list[dict], prefix: str = "answers") -> tuple[dict, list[FieldError]]:
    """Return the normalised answers and one error per offending field (empty answers are dropped)."""
    if not isinstance(answers, dict):
        return {}, [FieldError(prefix, "type", "must be an object of question key to answer")]
    by_key = {q["key"]: q for q in questions}
    errors = [FieldError(f"{prefix}.{key}", "unknown_question", "is not a question of this form version")
              for key in answers if key not in by_key]
    clean: dict[str, Any] = {}
    for question in questions:
        key = question["key"]
        value = answers.get(key)
        if is_empty(value):
            if question.get("required"):
                errors.append(FieldError(f"{prefix}.{key}", "required", "is required"))
            continue
        try:
            clean[key] = CHECKS[question["type"]](value, question)
        except AnswerError as err:
            errors.append(FieldError(f"{prefix}.{key}", err.code, str(err)))
    return clean, errors


def content_hash(answers: dict) -> str:
    """Stable across key order and whitespace, so a retried post is recognised as the same."""
    canonical = json.dumps(answers, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def search_words(answers: dict, questions: list[dict]) -> list[str]:
    words: set[str] = set()
    for question in questions:
        value = answers.get(question["key"])
        if question["type"] in TEXT_TYPES and isinstance(value, str):
            words.update(split_words(value))
    return sorted(words)


def split_words(text: str) -> list[str]:
    return [w for w in WORD_SEPARATORS.split(unicodedata.normalize("NFC", text).casefold()) if w]

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

import msgspec
import phonenumbers

from fieldpipe import domains
from fieldpipe.domains import LONG_TEXT_MAX_LENGTH, TEXT_MAX_LENGTH
from fieldpipe.problems import FieldError

QUESTION_TYPES = (
    "text", "long_text", "integer", "decimal", "single_choice", "multi_choice",
    "phone", "date", "boolean", "email",
    "datetime", "time", "geopoint", "geotrace", "geoshape", "image", "audio", "video", "file", "repeat",
)
CHOICE_TYPES = ("single_choice", "multi_choice")
GEO_TYPES = ("geopoint", "geotrace", "geoshape")
FLOAT_TYPES = ("decimal", *GEO_TYPES)  # the only answers that can hold a float once checked
# An attachment answer is the file's name on the device; the file itself lives in object storage.
ATTACHMENT_TYPES = ("image", "audio", "video", "file")
ATTACHMENT_NAME_MAX_LENGTH = 255
TEXT_TYPES = ("text", "long_text")
NUMBER_TYPES = ("integer", "decimal")
# How a masked answer shows where personal data must not: `partial` keeps a phone's country and last four
# digits (an email's first letter and domain), `hash` a pseudonym of the value, `drop` nothing.
MASK_MODES = ("partial", "hash", "drop")
PARTIAL_MASK_TYPES = ("phone", "email")
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
TIME_PATTERN = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?")
GEOPOINT_FIELDS = ("latitude", "longitude", "altitude", "accuracy")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Words are split on white space and punctuation only, so combining marks (Devanagari matras) stay inside words.
WORD_SEPARATORS = re.compile(r"[\s!-/:-@\[-`{-~\u0964\u0965\u2010-\u2027\u00a0-\u00bf]+")


def mask_mode(question: dict) -> str | None:
    """The question's mask mode, or None when unmasked; `"mask": true` means the type's default."""
    mask = question.get("mask")
    if mask is True:
        return "partial" if question["type"] in PARTIAL_MASK_TYPES else "drop"
    return mask or None


class AnswerError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def is_empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def _text_check(question: dict) -> Callable[[Any], str]:
    max_length = LONG_TEXT_MAX_LENGTH if question["type"] == "long_text" else TEXT_MAX_LENGTH

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise AnswerError("type", "must be a string")
        value = unicodedata.normalize("NFC", value)
        _raise_if(domains.text_problem(value, max_length))
        return value
    return check


def _raise_if(problem: tuple[str, str] | None) -> None:
    if problem:
        raise AnswerError(*problem)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnswerError("type", "must be an integer")
    _raise_if(domains.integer_problem(value))
    return value


def _decimal(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnswerError("type", "must be a number")
    _raise_if(domains.decimal_problem(value))
    return value


def _choice_values(question: dict) -> frozenset[str]:
    return frozenset(c["value"] for c in question.get("choices", []))


def _single_choice_check(question: dict) -> Callable[[Any], str]:
    offered = _choice_values(question)

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise AnswerError("type", "must be one choice value (a string)")
        if value not in offered:
            raise AnswerError("choice", f"{value!r} is not one of the offered choices")
        return value
    return check


def _multi_choice_check(question: dict) -> Callable[[Any], list[str]]:
    offered = _choice_values(question)

    def check(value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise AnswerError("type", "must be a list of choice values")
        unknown = [v for v in value if v not in offered]
        if unknown:
            raise AnswerError("choice", f"{', '.join(map(repr, unknown))} not among the offered choices")
        if len(set(value)) != len(value):
            raise AnswerError("duplicate", "a choice is picked more than once")
        return value
    return check


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


def _date(value: Any) -> str:
    if not isinstance(value, str) or not DATE_PATTERN.fullmatch(value):
        raise AnswerError("date", "must be a date YYYY-MM-DD")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise AnswerError("date", "is not a real calendar date") from None
    _raise_if(domains.date_problem(day))
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise AnswerError("type", "must be true or false")
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or not EMAIL_PATTERN.fullmatch(value) or len(value) > 320:
        raise AnswerError("email", "is not an email address")
    _raise_if(domains.text_problem(value))
    return value


def _datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise AnswerError("datetime", "must be an ISO 8601 timestamp with a time zone")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise AnswerError("datetime", "must be an ISO 8601 timestamp with a time zone") from None
    if parsed.tzinfo is None:
        raise AnswerError("timezone", "must carry a time zone offset, e.g. 2026-11-23T10:00:00+05:30")
    _raise_if(domains.timestamp_problem(parsed))
    return parsed.isoformat()


def _time(value: Any) -> str:
    if not isinstance(value, str) or not TIME_PATTERN.fullmatch(value):
        raise AnswerError("time", "must be a time of day HH:MM[:SS[.fff]] with an optional offset")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and domains.decimal_problem(value) is None


def _point(value: Any) -> dict:
    """{latitude, longitude, altitude?, accuracy?}: degrees and metres, as ODK records them."""
    if not isinstance(value, dict) or set(value) - set(GEOPOINT_FIELDS):
        raise AnswerError("geopoint", "must be an object with latitude, longitude, altitude and accuracy")
    if not all(_number(value.get(f)) for f in ("latitude", "longitude")):
        raise AnswerError("geopoint", "latitude and longitude must be numbers")
    if not -90 <= value["latitude"] <= 90 or not -180 <= value["longitude"] <= 180:
        raise AnswerError("geopoint", "latitude must be within ±90 and longitude within ±180 degrees")
    for extra in ("altitude", "accuracy"):
        if value.get(extra) is not None and not _number(value[extra]):
            raise AnswerError("geopoint", f"{extra} must be a number")
    if (value.get("accuracy") or 0) < 0:
        raise AnswerError("geopoint", "accuracy cannot be negative")
    return {f: value.get(f) for f in GEOPOINT_FIELDS}


def _points(value: Any, minimum: int, what: str) -> list[dict]:
    if not isinstance(value, list) or len(value) < minimum:
        raise AnswerError(what, f"must be a list of at least {minimum} points")
    return [_point(p) for p in value]


def _geotrace(value: Any) -> list[dict]:
    return _points(value, 2, "geotrace")


def _geoshape(value: Any) -> list[dict]:
    points = _points(value, 4, "geoshape")
    if (points[0]["latitude"], points[0]["longitude"]) != (points[-1]["latitude"], points[-1]["longitude"]):
        raise AnswerError("geoshape", "must be closed: the last point repeats the first")
    return points


def check_attachment_name(value: Any) -> str:
    """A file name from the device: never a path, so it can neither escape nor collide in storage."""
    if not isinstance(value, str) or not value.strip():
        raise AnswerError("type", "must be the attached file's name")
    if "/" in value or "\\" in value or value in (".", "..") or "\x00" in value:
        raise AnswerError("attachment_name", "a file name cannot contain path separators")
    if len(value) > ATTACHMENT_NAME_MAX_LENGTH:
        raise AnswerError("too_long", f"must be at most {ATTACHMENT_NAME_MAX_LENGTH} characters")
    return unicodedata.normalize("NFC", value)


def _always(check: Callable[[Any], Any]) -> Callable[[dict], Callable[[Any], Any]]:
    """The check of a type whose rule does not depend on the question."""
    return lambda question: check


# Per question type, what makes the question's check (value -> normalised value, or AnswerError): built
# once per form version, so what a check needs from its question (choice sets, a length) is looked up once.
CHECKS: dict[str, Callable[[dict], Callable[[Any], Any]]] = {
    "text": _text_check,
    "long_text": _text_check,
    "integer": _always(_integer),
    "decimal": _always(_decimal),
    "single_choice": _single_choice_check,
    "multi_choice": _multi_choice_check,
    "phone": _always(normalize_phone),
    "date": _always(_date),
    "boolean": _always(_boolean),
    "email": _always(_email),
    "datetime": _always(_datetime),
    "time": _always(_time),
    "geopoint": _always(_point),
    "geotrace": _always(_geotrace),
    "geoshape": _always(_geoshape),
    **{kind: _always(check_attachment_name) for kind in ATTACHMENT_TYPES},
}


def answer_check(question: dict) -> Callable[[Any], Any]:
    """The check of one (non-repeat) question's answer: value -> normalised value, or AnswerError."""
    return CHECKS[question["type"]](question)


class AnswersChecker:
    """A form version's questions compiled once: checks answers and collects their search words.

    `check` gives the normalised answers and one error per offending field (empty answers are dropped);
    errors name fields under `prefix` (`answers.age`, `answers.members[0].name`).
    """

    def __init__(self, questions: list[dict]):
        self.known = frozenset(q["key"] for q in questions)
        # (key, required, check of a plain answer or None, checker of a repeat's items or None)
        self.fields = [
            (q["key"], bool(q.get("required")),
             None if q["type"] == "repeat" else answer_check(q),
             AnswersChecker(q["questions"]) if q["type"] == "repeat" else None)
            for q in questions
        ]
        self.text_keys = [q["key"] for q in questions if q["type"] in TEXT_TYPES]
        self.repeats = [(key, items) for key, _, _, items in self.fields if items is not None]
        self.float_free = (all(q["type"] not in FLOAT_TYPES for q in questions)
                           and all(items.float_free for _, items in self.repeats))

    def check(self, answers: Any, prefix: str = "answers") -> tuple[dict, list[FieldError]]:
        if not isinstance(answers, dict):
            return {}, [FieldError(prefix, "type", "must be an object of question key to answer")]
        errors = []
        if not self.known.issuperset(answers):
            errors = [FieldError(f"{prefix}.{key}", "unknown_question", "is not a question of this form version")
                      for key in answers if key not in self.known]
        clean: dict[str, Any] = {}
        get = answers.get
        for key, required, check, items in self.fields:
            value = get(key)
            if not value and is_empty(value):
                if required:
                    errors.append(FieldError(f"{prefix}.{key}", "required", "is required"))
                continue
            if items is not None:
                clean[key] = items._check_repeat(value, f"{prefix}.{key}", errors)
                continue
            try:
                clean[key] = check(value)
            except AnswerError as err:
                errors.append(FieldError(f"{prefix}.{key}", err.code, str(err)))
        return clean, errors

    def _check_repeat(self, value: Any, where: str, errors: list[FieldError]) -> list[dict]:
        """A repeat's answer is a list of objects, each answering the repeat's own questions."""
        if not isinstance(value, list):
            errors.append(FieldError(where, "type", "must be a list of objects, one per repetition"))
            return []
        items = []
        for index, item in enumerate(value):
            clean, item_errors = self.check(item, f"{where}[{index}]")
            errors.extend(item_errors)
            items.append(clean)
        return items

    def hash(self, answers: dict) -> str:
        """`content_hash` of checked answers. Without floats (no decimal or geo question) msgspec's sorted
        encoding is the json module's canonical one byte for byte (they write some floats differently), at a
        fifth of its cost."""
        if self.float_free:
            return hashlib.sha256(SORTED_JSON.encode(answers)).hexdigest()
        return content_hash(answers)

    def search_words(self, answers: dict) -> list[str]:
        words: set[str] = set()
        self._collect_words(answers, words)
        return sorted(words)

    def _collect_words(self, answers: dict, words: set[str]) -> None:
        for key in self.text_keys:
            value = answers.get(key)
            if isinstance(value, str):  # checked, so already in NFC
                words.update(_words(value))
        for key, items in self.repeats:
            value = answers.get(key)
            if isinstance(value, list):
                for item in value:
                    items._collect_words(item, words)


CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))
SORTED_JSON = msgspec.json.Encoder(order="sorted")


def content_hash(answers: dict) -> str:
    """Stable across key order and whitespace, so a retried post is recognised as the same."""
    return hashlib.sha256(CANONICAL_JSON.encode(answers).encode()).hexdigest()


def split_words(text: str) -> list[str]:
    return _words(unicodedata.normalize("NFC", text))


def _words(normalised: str) -> list[str]:
    return [w for w in WORD_SEPARATORS.split(normalised.casefold()) if w]

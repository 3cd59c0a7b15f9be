"""Issue 13: the OpenAPI document states what the API accepts. Requests the document allows (bodies and query
strings generated from its own schemas: lengths, patterns, bounds, enums, formats, members) are sent to every
operation; none may be refused for a reason the document could have stated.

What a schema cannot state is allowed, and recognised by its code, never by message text:
- a problem whose status says so: 404 (a referenced id that does not exist), 409 (a duplicate, a state conflict);
- a 422 field error whose code names such a reason (`UNSTATABLE`), or one under a member the document marks
  `x-checked-against` (values checked against stored data, such as a form's questions for `answers`).
Any other 422 (or a 400, 403, 413, 415) for a schema-valid request fails, naming the operation, the field and
its code: that is a spot where the schema is looser than the code. Tighten the schema (api/schemas.py).

Operations are read from the app's OpenAPI document, so a new route is covered without touching this file. The
example count keeps the run to a minute or two; FIELDPIPE_FUZZ_EXAMPLES raises it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import string
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import auth
from tests.test_assessments_api import UDISE, lo_assessment, school  # noqa: F401  (fixture)
from tests.test_fuzz_api import QUESTIONS, as_url, document

EXAMPLES = int(os.environ.get("FIELDPIPE_FUZZ_EXAMPLES", 10))
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

# Field error codes for reasons a JSON Schema cannot state, each with why.
UNSTATABLE = {
    "duplicate": "unique across the items of a list by one member, or already stored",
    "unknown_question": "names a question of the stored form",
    "unknown_item": "names an item of the stored assessment",
    "unknown_student": "names a student of the stored roster",
    "other_class": "the student is in another class (stored roster)",
    "deleted_student": "the student was removed (stored roster)",
    "not_assigned": "the class is not assigned to the assessment (stored)",
    "wrong_level": "the assessment's stored level takes another kind of submission",
    "marks_above_max": "the item's stored maximum",
    "cleared_above_present": "one member compared with another",
    "absent": "marks for a student marked absent: one member compared with another",
    "grade": "a grade of the assessment's stored scale",
    "exam": "the assessment's stored kind",
    "not_an_exam": "the assessment's stored kind (only an exam has answer keys and closes)",
    "order": "the items of a list compared with each other",
    "before_birth": "one date compared with another",
    "before_admission": "one date compared with another (stored admission)",
    "before_leaving": "one date compared with another",
    "future": "compared with today",
    "version": "a stored version of the form",
    "phone_required": "the stored form's settings",
    "choice": "a choice of the stored question, or one of the list's own items (an exam's answer key)",
    "phone": "a number that exists in its country's numbering plan (libphonenumber); the shape is stated",
    "unresolvable": "whether a host name resolves (DNS), known only when it is resolved",
    "forbidden_address": "where a host name resolves (a public address), known only when it is resolved",
    "scheme": "https is required in production deployments (a setting of the deployment, not of the API)",
    "closed": "the stored state of the resource",
    "invalid": "a signature or a certificate checked against stored keys",
    "unknown_kind": "a task kind installed in this deployment (plugins add kinds)",
    "custom_only": "one member compared with another (only a custom template declares placeholders)",
    "unknown_placeholder": "one member compared with others (the placeholders its kind provides or it declares)",
}
FORMAT_STRATEGIES = {
    "uuid": st.uuids().map(str),
    "email": st.emails(),
    "uri": st.sampled_from(["https://example.com/hook", "https://example.org/a?b=c"]),
}


def timestamps() -> st.SearchStrategy:
    """RFC 3339 date-times over the whole range the format allows, with any offset."""
    moments = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    offsets = st.one_of(st.just("Z"), st.builds(lambda sign, h, m: f"{sign}{h:02d}:{m:02d}", st.sampled_from("+-"),
                                                 st.integers(0, 23), st.integers(0, 59)))
    return st.builds(lambda m, o: m.isoformat() + o, moments, offsets)


FORMAT_STRATEGIES["date-time"] = timestamps()
FORMAT_STRATEGIES["date"] = st.dates().map(lambda d: d.isoformat())


def _string(schema: dict) -> st.SearchStrategy:
    patterns = [schema["pattern"]] if "pattern" in schema else []
    patterns += [part["pattern"] for part in schema.get("allOf", []) if "pattern" in part]
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if "format" in schema and schema["format"] in FORMAT_STRATEGIES:
        base = FORMAT_STRATEGIES[schema["format"]]
    elif patterns and patterns[0].startswith("^") and patterns[0].endswith("$"):
        base = st.from_regex(patterns[0], fullmatch=True)
    else:
        # any text (surrogates aside, as JSON from a real client would be); most of it short
        size = st.integers(low, min(high if high is not None else 40, low + 40))
        base = size.flatmap(lambda n: st.text(st.characters(exclude_categories=("Cs",)), min_size=n, max_size=n))
        if high is not None and high > low + 40:
            base = st.one_of(base, st.just("x" * high))  # the longest allowed
    compiled = [re.compile(p) for p in patterns]
    return base.filter(lambda s: low <= len(s) <= (high if high is not None else len(s))
                       and all(p.search(s) for p in compiled))


def _integer_bounds(schema: dict, default: int = 10**20) -> tuple[int, int]:
    low = (math.ceil(schema["minimum"]) if "minimum" in schema
           else math.floor(schema["exclusiveMinimum"]) + 1 if "exclusiveMinimum" in schema else -default)
    high = (math.floor(schema["maximum"]) if "maximum" in schema
            else math.ceil(schema["exclusiveMaximum"]) - 1 if "exclusiveMaximum" in schema else default)
    return low, high


def _integer(schema: dict) -> st.SearchStrategy:
    low, high = _integer_bounds(schema)
    small = st.integers(max(low, -3), min(high, 30)) if max(low, -3) <= min(high, 30) else st.nothing()
    return st.one_of(st.integers(low, high), st.sampled_from([low, high]), small)


def _number(schema: dict) -> st.SearchStrategy:
    floats = st.floats(min_value=schema.get("minimum", schema.get("exclusiveMinimum")),
                       max_value=schema.get("maximum", schema.get("exclusiveMaximum")),
                       exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
                       allow_nan=False, allow_infinity=False)
    return st.one_of(floats, _integer(schema))


ANY_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-100, 100), st.text(max_size=8)),
                        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner,
                                                                                    max_size=2), max_leaves=4)


def valid(schema: dict, components: dict, depth: int = 0) -> st.SearchStrategy:
    """Values the schema allows (the subset of JSON Schema 2020-12 the document uses)."""
    if "$ref" in schema:
        return valid(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    for keyword in ("anyOf", "oneOf"):
        if keyword in schema:
            options = schema[keyword]
            if depth > 6:  # a recursive shape: its way out first (null, or the shortest)
                options = sorted(options, key=lambda o: o.get("type") != "null")[:1]
            return st.one_of([valid(option, components, depth + 1) for option in options])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([valid({**schema, "type": k}, components, depth) for k in kind])
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        optional = {} if depth > 6 else {k: valid(v, components, depth + 1) for k, v in properties.items()
                                         if k not in required}
        fixed = st.fixed_dictionaries({k: valid(properties[k], components, depth + 1) for k in required},
                                      optional=optional)
        if "patternProperties" in schema:  # keys by pattern (e.g. language codes), at least minProperties
            [(pattern, member)] = schema["patternProperties"].items()
            low = schema.get("minProperties", 0)
            return st.dictionaries(st.from_regex(pattern, fullmatch=True), valid(member, components, depth + 1),
                                   min_size=low, max_size=max(low, 2))
        extra = schema.get("additionalProperties", True)
        if extra is False or depth > 6:
            return fixed
        names = (valid(schema["propertyNames"], components, depth + 1) if "propertyNames" in schema
                 else st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)).filter(lambda n: n not in properties)
        values = ANY_JSON if extra is True or extra == {} else valid(extra, components, depth + 1)
        more = st.dictionaries(names, values, max_size=2)
        return st.builds(lambda known, unknown: {**unknown, **known}, fixed, st.one_of(st.just({}), more))
    if kind == "array":
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", 3), 3 if depth <= 6 else low))
        items = valid(schema.get("items", {}), components, depth + 1)
        return st.lists(items, min_size=low, max_size=high, unique_by=(lambda v: json.dumps(v, sort_keys=True))
                        if schema.get("uniqueItems") else None)
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return _integer(schema)
    if kind == "number":
        return _number(schema)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return ANY_JSON


DOCUMENT = document()
COMPONENTS = DOCUMENT["components"]["schemas"]


def json_operations() -> list[tuple[str, str, dict]]:
    """Every operation of the API that takes JSON or nothing and an admin key or no key (file uploads and OpenRosa
    have fuzzes of their own; a student's token is another caller, see tests/test_exams.py)."""
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            media = set(op.get("requestBody", {}).get("content", {}))
            callers = {name for requirement in op.get("security", []) for name in requirement}
            if path.startswith("/api/") and (not media or "application/json" in media) and callers <= {"apiKey"}:
                found.append((path, method, op))
    return found


def query_value(schema: dict) -> st.SearchStrategy:
    """A query parameter's value as a client writes it in a URL."""
    if schema.get("type") == "boolean":
        return st.sampled_from(["true", "false"])
    return valid(schema, COMPONENTS).map(lambda v: str(v) if not isinstance(v, bool) else str(v).lower())


def checked_against_stored_data(schema: dict, field: str) -> bool:
    """Whether the field error's path runs through a member marked `x-checked-against`."""
    node = schema
    for part in re.findall(r"[^.\[\]]+", field):
        while "$ref" in node:
            node = COMPONENTS[node["$ref"].rsplit("/", 1)[1]]
        if node.get("x-checked-against"):
            return True
        options = node.get("anyOf", []) + node.get("oneOf", [])
        node = next((o for o in options if o.get("type") != "null"), node) if options else node
        while "$ref" in node:
            node = COMPONENTS[node["$ref"].rsplit("/", 1)[1]]
        if part.isdigit() and "items" in node:
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            return bool(node.get("x-checked-against"))
    return bool(node.get("x-checked-against"))


def declared(schema: dict, field: str) -> bool:
    """Whether the field error's path names members the schema declares (not a member it leaves free-form)."""
    node = schema
    for part in re.findall(r"[^.\[\]]+", field):
        while "$ref" in node:
            node = COMPONENTS[node["$ref"].rsplit("/", 1)[1]]
        options = [o for o in node.get("anyOf", []) + node.get("oneOf", []) if o.get("type") != "null"]
        candidates = [node, *options]
        for candidate in candidates:
            while "$ref" in candidate:
                candidate = COMPONENTS[candidate["$ref"].rsplit("/", 1)[1]]
            if part.isdigit() and "items" in candidate:
                node = candidate["items"]
                break
            if part in candidate.get("properties", {}):
                node = candidate["properties"][part]
                break
        else:
            return False
    return True


def looser_than_the_code(op: dict, path: str, answer: dict) -> list[tuple[str, str]]:
    """(field, code) of each refusal the schema could have stated."""
    if answer.get("status") in (404, 409):
        return []
    if not op.get("security") and answer.get("status") in (401, 429):
        return []  # an operation that signs a caller in: credentials are checked against stored ones
    if answer.get("status") != 422:
        return [("", f"status {answer.get('status')} {answer.get('code')}")]
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    body_schema = content["schema"] if content else {}
    return [(e["field"], e["code"]) for e in answer.get("errors", [])
            if e["code"] not in UNSTATABLE and not checked_against_stored_data(body_schema, e["field"])
            # "unknown" on a declared member: what it names (a class, a form version) is not stored
            and not (e["code"] == "unknown" and declared(body_schema, e["field"]))]


@pytest.fixture
def stage(client, make_form, admin_key, collector_key, school, object_store, conn):  # noqa: F811
    """Real resources for the path parameters: a form with every question type, a response, a school, an
    assessment, a spare key to revoke (never the caller's own)."""
    from fieldpipe.orgs import create_key

    make_form("fuzz", questions=QUESTIONS)
    sid = str(uuid.uuid4())
    assert client.post("/api/v1/forms/fuzz/responses", headers=auth(collector_key), json={
        "submission_id": sid, "submitted_at": "2026-11-20T10:00:00+05:30", "collector": {"id": "c1"},
        "answers": {"i": 1}}).status_code == 201
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]]), headers=auth(admin_key))
    assert created.status_code == 201
    create_key(conn, "acme", "collector")
    spare = conn.execute("SELECT max(id) AS id FROM api_keys").fetchone()["id"]
    return {"slug": "fuzz", "submission_id": sid, "udise": UDISE, "class_id": school["class_a"],
            "assessment_id": created.get_json()["id"], "student_id": school["students"][0], "key_id": spare}


@pytest.mark.parametrize("path,method,op", json_operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_request_the_document_allows_is_refused_for_a_reason_it_could_state(client, stage, admin_key,
                                                                                path, method, op):
    names = re.findall(r"\{(\w+)\}", path)
    # `cursor`'s only valid values are pages' next_cursor (the contract test walks them); `answer.{key}` names a
    # question of the stored form.
    query = {p["name"]: query_value(p["schema"]) for p in op.get("parameters", [])
             if p["in"] == "query" and "{" not in p["name"] and p["name"] != "cursor"}
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    body_strategy = valid(content["schema"], COMPONENTS) if content else st.none()

    found: dict[tuple[str, str], Any] = {}  # every (field, code) the schema could have stated, with an example

    @FUZZ_SETTINGS
    @given(body=body_strategy, params=st.fixed_dictionaries({}, optional=query))
    def check(body: Any, params: dict):
        url = as_url(path, {n: stage.get(n, "1") for n in names}, params)
        resp = client.open(url, method=method.upper(), data=None if content is None else json.dumps(body),
                           content_type="application/json", headers=auth(admin_key))
        assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:300])
        if resp.status_code >= 400:
            for refusal in looser_than_the_code(op, path, resp.get_json()):
                found.setdefault(refusal, (url, json.dumps(body)[:300]))

    check()
    if found:
        pytest.fail(f"{method.upper()} {path}: refused requests its schema allows:\n" + "\n".join(
            f"  {field or '(request)'}: {code}  e.g. {url} {body}" for (field, code), (url, body) in sorted(found.items())))

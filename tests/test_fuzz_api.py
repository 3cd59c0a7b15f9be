"""A bounded property-based fuzz of the API (issue 11): bodies generated from the app's own OpenAPI document
(`from_schema`, hypothesis strategies over its schemas) and from hostile values, sent to every operation
through its WSGI app.

The properties: no answer is a 5xx, every error is problem+json, and a refused request stores nothing.
The example counts keep the run to about a minute; raise FIELDPIPE_FUZZ_EXAMPLES to fuzz longer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import spec
from api.app import register_routes
from fieldpipe import domains
from tests.helpers import auth
from tests.test_assessments_api import UDISE, lo_assessment, school  # noqa: F401  (fixture)

EXAMPLES = int(os.environ.get("FIELDPIPE_FUZZ_EXAMPLES", 15))
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))

QUESTIONS = [
    {"key": "t", "label": "Text", "type": "text"},
    {"key": "lt", "label": "Long text", "type": "long_text"},
    {"key": "i", "label": "Integer", "type": "integer", "required": True},
    {"key": "d", "label": "Decimal", "type": "decimal"},
    {"key": "sc", "label": "One", "type": "single_choice", "choices": [{"value": "a"}, {"value": "b"}]},
    {"key": "mc", "label": "Many", "type": "multi_choice", "choices": [{"value": "x"}, {"value": "y"}]},
    {"key": "p", "label": "Phone", "type": "phone", "mask": True},
    {"key": "dt", "label": "Date", "type": "date"},
    {"key": "b", "label": "Yes/no", "type": "boolean"},
    {"key": "e", "label": "Email", "type": "email"},
]

HOSTILE_TEXT = st.sampled_from([
    "\x00", "a\x00b", "\ud800", "x\udfffy", "\x07", "\x1b[2J", "\x7f", "\x85", "\ufffe", "\uffff", "³", "١٢٣",
    "=1+1", "+91", "-1", "@SUM(A1)", "NaN", "Infinity", "1e400", "0001-01-01T00:00:00+05:30",
    "9999-12-31T23:00:00-05:00", "0000-00-00", "2026-02-30", "-1", "99999999999999999999999", "", " ", "\t\n",
    "../../etc/passwd", "'; DROP TABLE responses; --", "%00", "\\u0000", "a" * (domains.TEXT_MAX_LENGTH + 1),
    "पानी", "🙂" * 5,
])
HOSTILE_NUMBER = st.one_of(
    st.integers(), st.sampled_from([10**15, -(10**15), 2**63, -(2**63) - 1, int("9" * 401), 1e308, -1e308, 1e-320]),
    st.floats(allow_nan=False, allow_infinity=False))
LEAF = st.one_of(st.none(), st.booleans(), HOSTILE_NUMBER, HOSTILE_TEXT, st.text(max_size=20))
JSON_VALUE = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.one_of(HOSTILE_TEXT, st.text(max_size=8)), inner, max_size=3),
                          max_leaves=8)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value, sometimes a hostile one: deep code is reached, and hit."""
    return st.one_of(valid, valid, valid, JSON_VALUE)


def timestamps() -> st.SearchStrategy:
    offsets = st.sampled_from(["+00:00", "+05:30", "-05:00", "+14:00", "-12:00", "Z"])
    moments = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))
    return st.builds(lambda m, o: m.isoformat() + o, moments, offsets)


ANSWERS = st.fixed_dictionaries({}, optional={
    "t": maybe(st.text(max_size=30)), "lt": maybe(st.text(max_size=60)), "i": maybe(st.integers()),
    "d": maybe(st.floats(allow_nan=False, allow_infinity=False)), "sc": maybe(st.sampled_from(["a", "b", "c"])),
    "mc": maybe(st.lists(st.sampled_from(["x", "y", "z"]), max_size=3)),
    "p": maybe(st.sampled_from(["+919876543210", "+14155552671", "12345", "+91"])),
    "dt": maybe(st.dates().map(str)), "b": maybe(st.booleans()), "e": maybe(st.emails()),
})
SUBMISSION = st.fixed_dictionaries({
    "submission_id": maybe(st.uuids().map(str)), "submitted_at": maybe(timestamps()),
    "collector": maybe(st.fixed_dictionaries({"id": maybe(st.text(min_size=1, max_size=20))},
                                             optional={"phone": maybe(st.just("+919812345678"))})),
    "answers": maybe(ANSWERS),
}, optional={"form_version": maybe(st.integers())})


FORMATS = {"uuid": st.uuids().map(str), "date-time": st.one_of(st.just("2026-11-20T10:00:00+05:30"), st.text(max_size=5)),
           "date": st.dates().map(str), "email": st.emails(), "uri": st.sampled_from(["https://example.com/hook",
                                                                                    "http://[2002:7f00:1::1]/", "x"])}


def from_schema(schema: dict, components: dict, depth: int = 0) -> st.SearchStrategy:
    """Values of (the subset of JSON Schema the API's document uses), mixed with hostile ones at every level.
    Recursive schemas (a repeat's questions) stop at a few levels."""
    if depth > 4:
        return JSON_VALUE
    if "$ref" in schema:
        return from_schema(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    if "allOf" in schema:
        merged: dict = {"type": "object", "properties": {}, "required": []}
        for part in schema["allOf"]:
            part = components[part["$ref"].rsplit("/", 1)[1]] if "$ref" in part else part
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        return from_schema(merged, components, depth + 1)
    if "anyOf" in schema or "oneOf" in schema:
        return st.one_of([from_schema(s, components, depth + 1) for s in schema.get("anyOf", schema.get("oneOf"))])
    if "enum" in schema:
        return maybe(st.sampled_from(schema["enum"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}, components, depth) for k in kind])
    if kind == "object":
        props = {k: from_schema(v, components, depth + 1) for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        return maybe(st.fixed_dictionaries({k: v for k, v in props.items() if k in required},
                                           optional={k: v for k, v in props.items() if k not in required}))
    if kind == "array":
        return maybe(st.lists(from_schema(schema.get("items", {}), components, depth + 1), min_size=schema.get("minItems", 0),
                              max_size=min(schema.get("maxItems", 4), 4)))
    if kind == "string":
        return maybe(FORMATS.get(schema.get("format"), st.text(max_size=20)))
    if kind == "integer":
        return maybe(st.integers(min_value=-5, max_value=50))
    if kind == "number":
        return maybe(st.floats(min_value=-5, max_value=200))
    if kind == "boolean":
        return maybe(st.booleans())
    return JSON_VALUE


def document() -> dict:
    """The OpenAPI document the app serves, generated from the routes' declarations (no database needed)."""
    routes_only = Flask("fuzz")
    register_routes(routes_only)
    return spec.document(routes_only)


def operations() -> list[tuple[str, str, dict]]:
    doc = document()
    return [(path, method, op) for path, item in doc["paths"].items() if path.startswith("/api/")
            for method, op in item.items()]


def body_strategy(op: dict) -> st.SearchStrategy:
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content is None:
        return st.none()
    ref = content["schema"].get("$ref", "")
    if ref.endswith(("/Submission", "/ResponsePatch")):
        return SUBMISSION
    if ref.endswith("/Batch"):
        return st.fixed_dictionaries({"items": st.lists(SUBMISSION, min_size=0, max_size=4)})
    return st.one_of(from_schema(content["schema"], COMPONENTS), JSON_VALUE)


COMPONENTS = document()["components"]["schemas"]
PATH_TEXT = st.one_of(st.text(min_size=1, max_size=12), HOSTILE_TEXT.filter(bool))


def count_rows(conn) -> dict[str, int]:
    tables = [r["tablename"] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
    query = "SELECT " + ", ".join(f'(SELECT count(*) FROM "{t}") AS "{t}"' for t in tables)
    return dict(conn.execute(query).fetchone())


@pytest.fixture
def world(client, make_form, admin_key, collector_key, school, object_store):  # noqa: F811
    """A form with every question type, a response, an assessment: real ids for the path parameters."""
    make_form("fuzz", questions=QUESTIONS)
    sid = str(uuid.uuid4())
    stored = client.post("/api/v1/forms/fuzz/responses", headers=auth(collector_key), json={
        "submission_id": sid, "submitted_at": "2026-11-20T10:00:00+05:30", "collector": {"id": "c1"},
        "answers": {"i": 1}})
    assert stored.status_code == 201
    created = client.post("/api/v1/assessments", json=lo_assessment([school["class_a"]]), headers=auth(admin_key))
    assert created.status_code == 201
    return {"slug": "fuzz", "submission_id": sid, "udise": UDISE, "class_id": school["class_a"],
            "assessment_id": created.get_json()["id"], "student_id": school["students"][0],
            "webhook_id": 1, "delivery_id": 1, "message_id": 1}


def escaped(value: Any) -> str:
    """Percent-encoded as a client would send it (a lone surrogate as the bytes it would be in UTF-8)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def as_url(path: str, values: dict, query: dict) -> str:
    url = re.sub(r"\{(\w+)\}", lambda m: escaped(values[m.group(1)]), path)
    return url + ("?" + "&".join(f"{escaped(k)}={escaped(v)}" for k, v in query.items()) if query else "")


@pytest.mark.parametrize("path,method,op", operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_input_gets_a_5xx_and_refused_requests_store_nothing(client, conn, world, admin_key, path, method, op):
    names = re.findall(r"\{(\w+)\}", path)
    query_names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]

    @FUZZ_SETTINGS
    @given(body=body_strategy(op),
           path_values=st.fixed_dictionaries({n: st.one_of(st.just(world.get(n, "1")), PATH_TEXT) for n in names}),
           query=st.fixed_dictionaries({}, optional={n: st.one_of(HOSTILE_TEXT, st.text(max_size=10))
                                                      for n in query_names}))
    def check(body, path_values, query):
        before = count_rows(conn)
        data = None if body is None and method in ("get", "delete") else json.dumps(body)
        resp = client.open(as_url(path, path_values, query), method=method.upper(), data=data,
                           content_type="application/json", headers=auth(admin_key))
        assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True)[:500])
        if resp.status_code >= 400:
            assert resp.mimetype == "application/problem+json", resp.data[:200]
            assert count_rows(conn) == before, (resp.status_code, resp.get_json())

    check()

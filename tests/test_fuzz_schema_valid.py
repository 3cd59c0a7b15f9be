"""Issue 13: the OpenAPI document states what the API accepts. Requests the document allows (bodies, multipart
parts, CSV and query strings generated from its own schemas: lengths, patterns, bounds, enums, formats, members)
are sent to every operation, by the caller its security names (an admin key, a student's token, OpenRosa's Basic
auth, nobody); none may be refused for a reason the document could have stated.

What a schema cannot state is allowed, and recognised by its code, never by message text:
- a problem whose status says so: 404 (a referenced id that does not exist), 409 (a duplicate, a state conflict);
- a 422 field error whose code names such a reason (`UNSTATABLE`), or one under a member, part or query parameter
  the document marks `x-checked-against` (values checked against stored data, such as a form's questions for
  `answers`, or a file format's own grammar for an uploaded XLSForm).
Any other 422 (or a 400, 403, 413, 415) for a schema-valid request fails, naming the operation, the field and
its code: that is a spot where the schema is looser than the code. Tighten the schema (api/schemas.py).

Operations are read from the app's OpenAPI document, so a new route is fuzzed without touching this file; one the
fuzz cannot drive (an unknown security scheme or media type) fails `test_every_operation_is_fuzzed` unless it is
listed in `NOT_FUZZED` with a reason. Listings get real cursors (pages' `next_cursor`), `answer.{key}` the form's
question keys. The resources the path parameters name are made once for the module (`stage`); operations that
change or remove a resource get one of their own (`OWN_TARGET`), so the others keep theirs. Seeded, so every run
sends the same requests; FIELDPIPE_FUZZ_EXAMPLES raises the example count.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import math
import os
import re
import string
import uuid
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldpipe.config import WEBHOOK_ALLOW_NETS_ENV
from fieldpipe.dev.airflow_runtime import local_aws_connection
from fieldpipe.orgs import create_key
from tests.conftest import _key, _truncate_all
from tests.helpers import auth
from tests.openrosa_support import CENTRAL, TUTORIAL, WIDGETS, new_instance_id, tutorial_instance, upload_form
from tests.test_assessments_api import UDISE, lo_assessment, marks_batch
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
# Problems (422 without field errors) for reasons a schema cannot state.
UNSTATABLE_PROBLEMS = {
    "certificate-invalid": "a certificate's signature checked against the stored keys",
}
# Operations the fuzz does not drive, each with why (an operation missing here and from the fuzz fails a test).
NOT_FUZZED: dict[tuple[str, str], str] = {}
# Operations no schema-valid request of the fuzz gets accepted by, each with why (they still must refuse only for
# reasons the schema cannot state).
NEVER_ACCEPTED = {
    ("post", "/api/v1/announcements"): "needs a stored template, stored classes and no past send_at at once (each is "
                                       "offered, all three together rarely within the example count)",
    ("post", "/api/v1/assessments/{assessment_id}/answers"): "answers name the exam's stored questions and students",
    ("post", "/api/v1/enrollments"): "class_id names a stored class, slc_qr_payload a signed certificate",
    ("post", "/api/v1/forms/{slug}/tasks"): "kind names an installed task kind",
    ("post", "/api/v1/webhooks"): "the URL's host must resolve to an allowed address (no DNS here)",
    ("post", "/api/v1/auth/student"): "the PIN is checked against the stored hash",
    ("post", "/api/v1/announcements/{announcement_id}/approve"): "only an announcement awaiting approval is approved",
    ("post", "/api/v1/deliveries/{delivery_id}/retry"): "only a failed delivery is retried",
    ("post", "/api/v1/messages/{message_id}/resend"): "only a failed message is sent again",
    ("post", "/api/v1/messages/{message_id}/retry"): "only a failed message is retried",
    ("get", "/api/v1/forms/{slug}/responses/{submission_id}/attachments/{name}"): "no attachment's file has arrived",
    ("get", "/api/v1/forms/{slug}/rules/dry-runs/{job_id}"): "dry runs run in a thread; none is made up front",
    ("get", "/openrosa/{org}/forms/{xform_id}/media/{name}"): "the form has no media files",
}
CALLERS = {(): "nobody", ("apiKey",): "admin", ("studentToken",): "student", ("openRosa",): "openrosa"}
MEDIA = ("application/json", "multipart/form-data", "text/csv")

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


def _string(schema: dict, components: dict) -> st.SearchStrategy:
    if schema.get("contentMediaType") == "application/json" and "contentSchema" in schema:
        return valid(schema["contentSchema"], components).map(json.dumps)  # JSON text in a multipart field
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


def form_answers() -> st.SearchStrategy:
    """Answers the stage's form (tests/test_fuzz_api.py QUESTIONS) takes: its required question and any others."""
    text = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(str.strip)
    return st.fixed_dictionaries({"i": st.integers(-10**9, 10**9)}, optional={
        "t": text, "lt": text, "d": st.floats(-1e6, 1e6, allow_nan=False), "sc": st.sampled_from(["a", "b"]),
        "mc": st.lists(st.sampled_from(["x", "y"]), unique=True), "dt": st.dates(dt.date(1900, 1, 1)).map(str),
        "b": st.booleans(), "e": st.emails()})


# Values of the stage's stored data for members checked against it (by what they are checked against, and type),
# offered beside any value the schema allows: so requests also get past those checks to what follows them.
STORED = {
    ("the form's questions", "object"): form_answers(),
    ("the template's placeholders", "object"): st.fixed_dictionaries({"date": st.sampled_from(["15 August", "Monday"])}),
    ("the assessment's items", "string"): st.sampled_from(["R1", "LO1", "LO2"]),
    ("the organization's classes", "array"): st.just([1]),
    ("the organization's SMS templates", "integer"): st.just(1),
    ("the exam's questions", "string"): st.just("q1"),
    ("the question's choices", "string"): st.sampled_from(["a", "b", "c"]),
}


def valid(schema: dict, components: dict, depth: int = 0) -> st.SearchStrategy:
    """Values the schema allows (the subset of JSON Schema 2020-12 the document uses)."""
    if "$ref" in schema:
        return valid(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    stored = STORED.get((schema.get("x-checked-against"), schema.get("type")))
    if stored is not None:
        any_value = valid({k: v for k, v in schema.items() if k != "x-checked-against"}, components, depth)
        return st.one_of(stored, stored, any_value)  # mostly stored: several such members must agree at once
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
        return _string(schema, components)
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
VALIDATOR = jsonschema.Draft202012Validator
COMPONENTS = DOCUMENT["components"]["schemas"]


def resolve(node: dict) -> dict:
    while "$ref" in node:
        node = COMPONENTS[node["$ref"].rsplit("/", 1)[1]]
    return node


# --- what the fuzz sends ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """One generated request: its query, and its body as the test client takes it."""

    query: dict
    media: str | None = None
    body: Any = None


def query_value(schema: dict) -> st.SearchStrategy:
    """A query parameter's value as a client writes it in a URL."""
    if schema.get("type") == "boolean":
        return st.sampled_from(["true", "false"])
    return valid(schema, COMPONENTS).map(lambda v: str(v) if not isinstance(v, bool) else str(v).lower())


def query_strategy(op: dict, stage: "Stage", path: str) -> st.SearchStrategy:
    """Every declared query parameter, each sometimes: `cursor` from the listing's own pages, `answer.{key}`
    under the stored form's question keys."""
    fixed, optional = {}, {}
    for p in op.get("parameters", []):
        if p["in"] != "query":
            continue
        if p["name"] == "cursor":
            cursors = stage.cursors.get(path, [])
            if cursors:
                optional["cursor"] = st.sampled_from(cursors)
        elif p["name"].endswith("{key}"):
            prefix = p["name"][: -len("{key}")]
            for key in stage.question_keys:
                optional[prefix + key] = query_value(p["schema"])
        else:
            (fixed if p.get("required") else optional)[p["name"]] = query_value(p["schema"])
    return st.fixed_dictionaries(fixed, optional=optional)


STUDENT_IMPORT = {"$ref": "#/components/schemas/StudentImport"}


def csv_text(rows: list[dict]) -> str:
    """StudentImport's students as the CSV the same route takes (one guardian per row, in its columns)."""
    out = io.StringIO()
    columns = ["roll_number", "name", "parent_phone", "guardian_name", "guardian_relation", "guardian_phone",
               "guardian_language", "guardian_opted_out"]
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    for row in rows:
        guardian = (row.get("guardians") or [{}])[0]
        writer.writerow({"roll_number": row["roll_number"], "name": row["name"], "parent_phone": row.get("parent_phone") or "",
                         "guardian_name": guardian.get("name", ""), "guardian_relation": guardian.get("relation", ""),
                         "guardian_phone": guardian.get("phone") or "", "guardian_language": guardian.get("preferred_language", ""),
                         "guardian_opted_out": "" if "opted_out" not in guardian else str(guardian["opted_out"]).lower()})
    return out.getvalue()


def csv_students() -> st.SearchStrategy:
    """Students StudentImport allows, with at most one guardian each (a CSV row has columns for one) and no
    carriage return in a cell (a CSV line ending, which readers may rewrite inside a quoted cell)."""
    schema = COMPONENTS["StudentImport"]
    students = valid(schema, COMPONENTS).map(lambda body: [
        {**s, "guardians": s["guardians"][:1]} if s.get("guardians") else s for s in body["students"]])
    return students.filter(lambda rows: all(
        "\r" not in str(v)
        for row in rows for v in [row["roll_number"], row["name"], *(row.get("guardians") or [{}])[0].values()]
        if v is not None))


FILE_NAMES = st.text(st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="/\\\""), min_size=1,
                     max_size=30).filter(lambda n: n.strip() and n not in (".", ".."))


def xform_files() -> st.SearchStrategy:
    """Real XLSForms and XForms (the shared fixtures), the XForms under a new form id each time."""
    xml_forms = sorted((CENTRAL / "forms").glob("*.xml"))

    def renamed(path, form_id: str) -> tuple[bytes, str]:
        text = path.read_text()
        return re.sub(r'(<instance>\s*<[^ >]+ [^>]*?id=")[^"]+', lambda m: m.group(1) + form_id, text, count=1).encode(), ".xml"

    return st.one_of(st.sampled_from([(TUTORIAL / "tutorial_w_repeats.xls").read_bytes(), WIDGETS.read_bytes()])
                     .map(lambda data: (data, ".xls")),
                     st.builds(renamed, st.sampled_from(xml_forms), st.from_regex(r"[a-z][a-z0-9_]{2,20}", fullmatch=True)))


def import_files(stage: "Stage") -> st.SearchStrategy:
    """CSV files in the form's template's columns, any text in the cells (checked row by row when imported)."""
    cell = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)

    def render(rows):
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(stage.import_columns)
        writer.writerows(rows)
        return out.getvalue().encode(), ".csv"

    return st.lists(st.lists(cell, min_size=len(stage.import_columns), max_size=len(stage.import_columns)),
                    max_size=3).map(render)


def instances() -> st.SearchStrategy:
    """The tutorial form's submission with a new instance id and any text in its answers (checked against the
    form's questions)."""
    text = st.text(st.characters(exclude_categories=("Cs", "Cc")), max_size=10)
    return st.builds(lambda name, age: (tutorial_instance(instanceID=new_instance_id(), name=escape(name),
                                                          age=escape(age)), ".xml"),
                     text, st.one_of(st.integers(0, 120).map(str), text))


def file_contents(path: str, part: str, stage: "Stage") -> st.SearchStrategy:
    """(bytes, extension) for a file part: what the part's description says it holds, else any bytes."""
    if path in ("/api/v1/forms", "/api/v1/forms/{slug}") and part == "file":
        return xform_files()
    if path == "/api/v1/forms/{slug}/imports":
        return import_files(stage)
    if path == "/openrosa/{org}/submission" and part == "xml_submission_file":
        return instances()
    return st.tuples(st.binary(max_size=64), st.sampled_from(["", ".jpg", ".csv", ".bin"]))


def multipart(schema: dict, path: str, stage: "Stage") -> st.SearchStrategy:
    """Multipart parts the schema allows: files under any file name (with the extension of their content type),
    text fields from their schemas."""
    def part(name: str, node: dict) -> st.SearchStrategy:
        many = node.get("type") == "array"
        node = node["items"] if many else node
        if node.get("format") != "binary":
            return valid(node, COMPONENTS)
        one = st.builds(lambda content, stem: (content[0], stem + content[1]),
                        file_contents(path, name, stage), FILE_NAMES)
        return st.lists(one, min_size=1, max_size=2) if many else one

    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    fixed = st.fixed_dictionaries({n: part(n, properties[n]) for n in required},
                                  optional={n: part(n, s) for n, s in properties.items() if n not in required})
    other = schema.get("additionalProperties")
    if not other:
        return fixed
    attachments = st.dictionaries(FILE_NAMES.filter(lambda n: n not in properties), part("", other), max_size=2)
    return st.builds(lambda known, more: {**more, **known}, fixed, attachments)


def body_strategy(path: str, op: dict, stage: "Stage") -> st.SearchStrategy:
    """(media, body) the request body's schemas allow, one media type at a time."""
    content = op.get("requestBody", {}).get("content", {})
    options = []
    for media, entry in content.items():
        if media == "application/json":
            options.append(valid(entry["schema"], COMPONENTS).map(lambda b: ("application/json", json.dumps(b))))
        elif media == "multipart/form-data":
            options.append(multipart(resolve(entry["schema"]), path, stage)
                           .map(lambda parts: ("multipart/form-data", parts)))
        elif media == "text/csv":
            options.append(csv_students().map(lambda rows: ("text/csv", csv_text(rows).encode())))
    return st.one_of(options) if options else st.just((None, None))


def unfuzzable(path: str, method: str, op: dict) -> str | None:
    """Why the fuzz cannot drive an operation (a caller or media type it does not know), or None."""
    schemes = tuple(sorted({name for requirement in op.get("security", []) for name in requirement}))
    if schemes not in CALLERS:
        return f"no caller for security {schemes}"
    content = op.get("requestBody", {}).get("content", {})
    unknown = set(content) - set(MEDIA)
    if unknown:
        return f"no generator for {sorted(unknown)}"
    if "text/csv" in content and content.get("application/json", {}).get("schema") != STUDENT_IMPORT:
        return "text/csv is generated as StudentImport's rows only"
    return None


def all_operations() -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in DOCUMENT["paths"].items() for method, op in item.items()]


def fuzzed_operations() -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, method, op in all_operations()
            if (method, path) not in NOT_FUZZED and unfuzzable(path, method, op) is None]


def test_every_operation_is_fuzzed_or_listed_with_a_reason():
    unaccounted = [f"{m.upper()} {p}: {unfuzzable(p, m, op)}" for p, m, op in all_operations()
                   if unfuzzable(p, m, op) is not None and (m, p) not in NOT_FUZZED]
    assert unaccounted == [], "operations the fuzz cannot drive; teach it, or list them in NOT_FUZZED with why"
    listed = {(m, p) for p, m, _ in all_operations()}
    assert set(NOT_FUZZED) | set(NEVER_ACCEPTED) <= listed, "operations listed here that the document no longer has"
    kinds = {CALLERS[tuple(sorted({n for r in op.get("security", []) for n in r}))] for _, _, op in fuzzed_operations()}
    media = {m for _, _, op in fuzzed_operations() for m in op.get("requestBody", {}).get("content", {})}
    assert kinds == set(CALLERS.values()) and media == set(MEDIA)


# --- which refusals the schema could have stated --------------------------------------------------------------

def checked_against_stored_data(schema: dict, field: str) -> bool:
    """Whether the field error's path runs through a member marked `x-checked-against`."""
    node = schema
    for part in re.findall(r"[^.\[\]]+", field):
        node = resolve(node)
        if node.get("x-checked-against"):
            return True
        options = node.get("anyOf", []) + node.get("oneOf", [])
        node = resolve(next((o for o in options if o.get("type") != "null"), node) if options else node)
        if part.isdigit() and "items" in node:
            node = node["items"]
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:
            return bool(node.get("x-checked-against"))
    return bool(resolve(node).get("x-checked-against"))


def declared(schema: dict, field: str) -> bool:
    """Whether the field error's path names members the schema declares (not a member it leaves free-form)."""
    node = schema
    for part in re.findall(r"[^.\[\]]+", field):
        node = resolve(node)
        options = [o for o in node.get("anyOf", []) + node.get("oneOf", []) if o.get("type") != "null"]
        for candidate in [node, *options]:
            candidate = resolve(candidate)
            if part.isdigit() and "items" in candidate:
                node = candidate["items"]
                break
            if part in candidate.get("properties", {}):
                node = candidate["properties"][part]
                break
        else:
            return False
    return True


def answer_problem(op: dict, resp) -> str | None:
    """What is wrong with an answer against the document: a status it does not list, a body its schema refuses."""
    documented = op["responses"].get(str(resp.status_code))
    if documented is None:
        return f"status {resp.status_code} is not documented"
    for media, entry in documented.get("content", {}).items():
        if media in ("application/json", "application/problem+json") and resp.mimetype == media and "schema" in entry:
            errors = sorted(VALIDATOR({**entry["schema"], "components": DOCUMENT["components"]})
                            .iter_errors(resp.get_json()), key=str)
            if errors:
                return f"{resp.status_code} answer: {errors[0].message[:120]} at {list(errors[0].absolute_path)}"
    return None


def openrosa_answer(status: int, xml: bytes) -> dict:
    """An OpenRosa error envelope as a problem: its message's nature is the problem's slug."""
    nature = ElementTree.fromstring(xml).find("{http://openrosa.org/http/response}message").get("nature")
    return {"status": status, "code": nature}


def looser_than_the_code(op: dict, answer: dict, media: str | None) -> list[tuple[str, str]]:
    """(field, code) of each refusal the schema could have stated."""
    status = answer.get("status")
    if status in (404, 409):
        return []
    if not op.get("security") and status in (401, 429):
        return []  # an operation that signs a caller in: credentials are checked against stored ones
    if status != 422:
        return [("", f"status {status} {answer.get('code')}")]
    content = op.get("requestBody", {}).get("content", {})
    # a CSV's rows are checked as the JSON body's members are, and its errors are named the same way
    schema = content.get("application/json" if media == "text/csv" else media, {}).get("schema", {})
    if answer.get("type", "").rsplit("/", 1)[-1] in UNSTATABLE_PROBLEMS:
        return []
    if "errors" not in answer:  # OpenRosa: the whole instance checked against the form
        return [] if any(p.get("x-checked-against") for p in resolve(schema).get("properties", {}).values()) \
            else [("", f"422 {answer.get('code')}")]
    params = {p["name"].split("{")[0]: p["schema"] for p in op.get("parameters", []) if p["in"] == "query"}
    return [(e["field"], e["code"]) for e in answer["errors"]
            if e["code"] not in UNSTATABLE and not checked_against_stored_data(schema, e["field"])
            and not any(e["field"].startswith(name) and s.get("x-checked-against") for name, s in params.items())
            # "unknown" on a declared member: what it names (a class, a form version) is not stored
            and not (e["code"] == "unknown" and declared(schema, e["field"]))]


# --- the resources path parameters name ---------------------------------------------------------------------------

HOOK_URL = "http://127.0.0.1:9/hooks"  # never called: deliveries are only queued here


@dataclass
class Stage:
    client: Any
    headers: dict[str, dict]  # caller -> headers
    values: dict[str, Any]  # path parameter -> value
    own: dict[tuple[str, str], dict]  # (method, path) -> the values of the resource it changes or removes
    cursors: dict[str, list[str]]  # listing path -> next_cursors of its pages
    question_keys: list[str]
    import_columns: list[str]

    def url(self, method: str, path: str, query: dict) -> str:
        values = {**self.values, **self.own.get((method, path), {})}
        return as_url(path, {n: values.get(n, "1") for n in re.findall(r"\{(\w+)\}", path)}, query)


def made(resp, *statuses: int) -> Any:
    assert resp.status_code in (statuses or (200, 201, 202)), resp.get_data(as_text=True)[:500]
    return resp.get_json(silent=True)


@pytest.fixture(scope="module")
def stage(app, db_url, s3_server):
    """Two or more of every resource in one organization, made through the API; a resource of their own for the
    operations that change or remove one (OWN_TARGET)."""
    from fieldpipe import objectstore

    patch = pytest.MonkeyPatch()
    patch.setenv("AIRFLOW_CONN_AWS_DEFAULT", local_aws_connection(s3_server))
    patch.setenv("FIELDPIPE_BUCKET", f"fuzz-{uuid.uuid4().hex[:16]}")
    patch.setenv(WEBHOOK_ALLOW_NETS_ENV, "127.0.0.0/8")
    objectstore.forget_clients()
    _truncate_all(db_url)
    admin, collector = _key(db_url, "acme", "admin"), _key(db_url, "acme", "collector")
    client = app.test_client()
    h = auth(admin)

    def post(url, body, *statuses, key=admin):
        return made(client.post(url, json=body, headers=auth(key)), *statuses)

    for slug in ("fuzz", "fuzz-own"):
        post("/api/v1/forms", {"slug": slug, "title": "Fuzz", "questions": QUESTIONS}, 201)
    sids = [str(uuid.uuid4()) for _ in range(2)]
    for sid in sids:
        post("/api/v1/forms/fuzz/responses", {"submission_id": sid, "submitted_at": "2026-11-20T10:00:00+05:30",
                                              "collector": {"id": "c1"}, "answers": {"i": 1}}, 201, key=collector)
    made(client.patch(f"/api/v1/forms/fuzz/responses/{sids[0]}", json={"answers": {"i": 2}}, headers=h))
    for n in (1, 2):
        made(client.put("/api/v1/forms/fuzz/rules", headers=h, json={
            "rules": [{"id": f"r{n}", "expression": "i > 0", "message": "m"}]}), 201)
    tutorial = made(upload_form(client, admin, TUTORIAL / "tutorial_w_repeats.xls"), 201)

    post("/api/v1/schools", {"udise": UDISE, "name": "GPS Demo", "district": "Shimla", "block": "Mashobra"}, 201)
    post("/api/v1/schools", {"udise": "02010100102", "name": "GPS Two", "district": "Shimla", "block": "Mashobra"}, 201)
    class_a = post(f"/api/v1/schools/{UDISE}/classes", {"grade": 5, "section": "A"}, 201)["id"]
    class_b = post(f"/api/v1/schools/{UDISE}/classes", {"grade": 5, "section": "B"}, 201)["id"]
    students = post(f"/api/v1/classes/{class_a}/students", {"students": [
        {"roll_number": str(n), "name": f"Student {n}", "parent_phone": "+919876543210"} for n in range(1, 6)]}, 200)
    ids = [s["id"] for s in students["students"]]
    post(f"/api/v1/classes/{class_b}/students", {"students": [{"roll_number": "1", "name": "Kiran"}]}, 200)
    post("/api/v1/subjects", {"code": "maths", "name": "Mathematics"}, 201)
    post("/api/v1/subjects", {"code": "evs", "name": "Environmental studies"}, 201)
    lo = [post("/api/v1/assessments", lo_assessment([class_a, class_b]), 201)["id"] for _ in range(2)]
    marks = {"LO1": 8, "LO2": 4}
    post(f"/api/v1/assessments/{lo[0]}/submissions/student", marks_batch(class_a, [
        {"student_id": s, "is_present": True, "marks": marks} for s in ids[:3]]), 201)
    by_class = post("/api/v1/assessments", lo_assessment([class_a, class_b], level="class",
                                                         items=[{"key": "R1", "max_marks": 1}]), 201)["id"]
    for class_id in (class_a, class_b):
        post(f"/api/v1/assessments/{by_class}/submissions/class", {
            "submission_id": str(uuid.uuid4()), "class_id": class_id, "submitted_at": "2026-11-20T11:05:00+05:30",
            "collector": {"id": "teacher-1"}, "results": [{"item": "R1", "present": 2, "cleared": 1}]}, 201)
    exam_body = lo_assessment([class_a], type="Question", level="exam", title="Quiz",
                              items=[{"key": "q1", "max_marks": 1, "choices": ["a", "b", "c"], "answer_key": "b"}],
                              grade_scale=[{"grade": "A", "min_percent": 60}, {"grade": "B", "min_percent": 0}])
    exams = [post("/api/v1/assessments", exam_body, 201)["id"] for _ in range(2)]
    slips = post(f"/api/v1/classes/{class_a}/student-signins", {"student_ids": [ids[0]]}, 201)["slips"]
    token = post("/api/v1/auth/student", {"class_id": class_a, "roll_number": "1", "pin": slips[0]["pin"]}, 200)["token"]
    left = post(f"/api/v1/students/{ids[4]}/leave", {"date": "2026-11-01", "reason": "moved"}, 201)
    post("/api/v1/slc-keys/rotate", None, 201)
    kids = [k["kid"] for k in made(client.get("/api/v1/slc-keys", headers=h))["items"]]
    from api.examples import ENROLLMENT
    post("/api/v1/enrollments", {**ENROLLMENT, "class_id": class_b, "out_of_state": {
        "state": "Punjab", "school_name": "GSSS Ludhiana", "certificate_number": "TC-1", "issued_on": "2026-10-01"}}, 201)
    post("/api/v1/enrollments", {**ENROLLMENT, "name": "Second Transfer", "class_id": class_b, "out_of_state": {
        "state": "Punjab", "school_name": "GSSS Ludhiana", "certificate_number": "TC-2", "issued_on": "2026-10-01"}}, 201)
    transfers = [t["id"] for t in made(client.get("/api/v1/transfers", headers=h))["items"]]
    hooks = [post("/api/v1/webhooks", {"url": HOOK_URL, "events": ["flag.opened"]}, 201)["id"] for _ in range(2)]
    task = {"kind": "webhook", "config": {"url": HOOK_URL, "events": ["response.created"]}}
    tasks = [post("/api/v1/forms/fuzz/tasks", task, 201)["id"] for _ in range(2)]
    replay = post(f"/api/v1/forms/fuzz/tasks/{tasks[0]}/replay", {"from": "2026-11-01T00:00:00Z",
                                                                   "to": "2026-12-01T00:00:00Z"}, 202)["id"]
    from api.examples import SMS_TEMPLATE
    templates = [post("/api/v1/sms-templates", {**SMS_TEMPLATE, "name": f"holiday {n}"}, 201)["id"] for n in range(2)]
    announcements = [post("/api/v1/announcements", {"template_id": templates[0], "values": {"date": "15 August"},
                                                    "audience": {"class_ids": [class_a]}}, 201, 202)["id"]
                     for _ in range(2)]
    uploaded = made(client.post("/api/v1/forms/fuzz/imports", headers=h, content_type="multipart/form-data",
                                data={"file": (io.BytesIO(b"i\n1\n"), "one.csv")}), 202)
    made(client.post("/api/v1/forms/fuzz/imports", headers=h, content_type="multipart/form-data",
                     data={"file": (io.BytesIO(b"i\n2\n"), "two.csv")}), 202)
    template = client.get("/api/v1/forms/fuzz/imports/template", headers=h).get_data(as_text=True)
    from fieldpipe.db import connect
    from fieldpipe.sms.outbox import NewMessage, enqueue as enqueue_sms
    from fieldpipe.webhooks.delivery import enqueue as enqueue_events
    with connect(db_url, autocommit=True) as conn:
        org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
        enqueue_events(conn, [{"organization_id": org, "event": "flag.opened", "event_key": f"k{n}", "data": {}}
                              for n in range(2)])
        enqueue_sms(conn, [NewMessage(f"announcement:{n}", "announcement", org, "+919876543210", "Hello")
                           for n in range(2)])
        create_key(conn, "acme", "collector", "to revoke")
        spare_key = conn.execute("SELECT id FROM api_keys WHERE label = 'to revoke'").fetchone()["id"]
        messages = [r["id"] for r in conn.execute("SELECT id FROM sms_messages ORDER BY id")]
        # what pipelines make (flags, task runs, recipients, notices, failures) and devices send (attachments)
        conn.execute("""INSERT INTO flags (form_id, response_id, revision, rule_id, severity, notify, message)
                        SELECT form_id, id, revision, 'rule-' || n, 'error', 'none', 'broken'
                          FROM responses, generate_series(1, 2) n""")
        conn.execute("""INSERT INTO attachments (response_id, name, question_type)
                        SELECT id, 'a' || n || '.jpg', 'image' FROM responses, generate_series(1, 2) n""")
        conn.execute("""INSERT INTO task_runs (task_id, response_id, revision, kind)
                        SELECT %s, id, revision, 'webhook' FROM responses""", (tasks[0],))
        conn.execute("""INSERT INTO announcement_recipients (announcement_id, recipient_key, phone, student_ids, status)
                        SELECT %s, 'guardian-' || n, '+919876543210', ARRAY[%s::bigint], 'pending'
                          FROM generate_series(1, 2) n""", (announcements[0], ids[0]))
        conn.execute("""INSERT INTO operator_notices (organization_id, incident, kind, subject, body, data, email_status)
                        SELECT %s, 'backlog:' || b, 'backlog.exceeded', 'late', 'late', '{}', 'none'
                          FROM unnest(ARRAY['sms', 'webhook']) b""", (org,))
        conn.execute("""INSERT INTO pipeline_failures (pipeline, form_id, error, reason)
                        SELECT 'export_sheets', id, 'DataError', 'psycopg.errors.DataError at jobs.py:1' FROM forms""")
        deliveries = [r["id"] for r in conn.execute("SELECT id FROM webhook_deliveries ORDER BY id")]

    values = {"slug": "fuzz", "submission_id": sids[0], "udise": UDISE, "class_id": class_a, "student_id": ids[0],
              "assessment_id": lo[0], "key_id": spare_key, "certificate_id": left["slc"]["id"], "kid": kids[-1],
              "transfer_id": transfers[0], "webhook_id": hooks[0], "task_id": tasks[0], "replay_id": replay,
              "template_id": templates[0], "announcement_id": announcements[0], "import_id": uploaded["id"],
              "message_id": messages[0], "delivery_id": deliveries[0], "version": 1, "job_id": 1,
              "org": "acme", "xform_id": tutorial["xform_id"], "name": "a1.jpg", "filename": "swagger-ui.css"}
    own = {
        ("patch", "/api/v1/forms/{slug}"): {"slug": "fuzz-own"},
        ("put", "/api/v1/forms/{slug}/rules"): {"slug": "fuzz-own"},
        ("patch", "/api/v1/assessments/{assessment_id}"): {"assessment_id": lo[1]},
        ("post", "/api/v1/assessments/{assessment_id}/close"): {"assessment_id": exams[1]},
        ("post", "/api/v1/assessments/{assessment_id}/answers"): {"assessment_id": exams[0]},
        ("post", "/api/v1/assessments/{assessment_id}/submissions/class"): {"assessment_id": by_class},
        ("get", "/api/v1/assessments/{assessment_id}/submissions/class"): {"assessment_id": by_class},
        ("delete", "/api/v1/students/{student_id}"): {"student_id": ids[3]},
        ("post", "/api/v1/students/{student_id}/leave"): {"student_id": ids[2]},
        ("post", "/api/v1/slc-keys/{kid}/revoke"): {"kid": kids[0]},  # the retired key, not the signing one
        ("post", "/api/v1/transfers/{transfer_id}/review"): {"transfer_id": transfers[-1]},
        ("delete", "/api/v1/webhooks/{webhook_id}"): {"webhook_id": hooks[1]},
        ("delete", "/api/v1/forms/{slug}/tasks/{task_id}"): {"task_id": tasks[1]},
        ("patch", "/api/v1/sms-templates/{template_id}"): {"template_id": templates[1]},
        ("post", "/api/v1/announcements/{announcement_id}/cancel"): {"announcement_id": announcements[1]},
        ("post", "/api/v1/messages/{message_id}/retry"): {"message_id": messages[1]},
        ("post", "/api/v1/messages/{message_id}/resend"): {"message_id": messages[1]},
        ("post", "/api/v1/deliveries/{delivery_id}/retry"): {"delivery_id": deliveries[1]},
    }
    # a student's routes: that student's own id, and an exam of their class
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            if op.get("security") == [{"studentToken": []}]:
                own[(method, path)] = {"student_id": ids[0], "assessment_id": exams[0]}
    headers = {"nobody": {}, "admin": h, "student": auth(token),
               "openrosa": {"Authorization": "Basic " + base64.b64encode(f"fuzz-device:{admin}".encode()).decode()}}
    probe = Stage(client, headers, values, own, {}, [q["key"] for q in QUESTIONS], next(csv.reader(io.StringIO(template))))
    for path, item in DOCUMENT["paths"].items():
        op = item.get("get", {})
        if any(p["name"] == "cursor" for p in op.get("parameters", [])):
            caller = CALLERS[tuple(sorted({n for r in op.get("security", []) for n in r}))]
            probe.cursors[path] = pages(client, probe.url("get", path, {}), headers[caller])
    yield probe
    patch.undo()
    objectstore.forget_clients()


def pages(client, url: str, headers: dict) -> list[str]:
    """The next_cursor of each page of a listing, walked to its end one item per page; each item once."""
    cursors: list[str] = []
    items: list[str] = []
    while True:
        resp = client.get(url + ("&" if "?" in url else "?") + "limit=1" + (f"&cursor={cursors[-1]}" if cursors else ""),
                          headers=headers)
        assert resp.status_code == 200, (url, resp.get_data(as_text=True)[:300])
        answer = resp.get_json()
        items += [json.dumps(item, sort_keys=True) for item in answer["items"]]
        if answer["next_cursor"] is None:
            assert len(items) == len(set(items)) == len(cursors) + 1, f"{url}: an item twice, or a page not of one"
            return cursors
        cursors.append(answer["next_cursor"])


def test_every_listing_pages_through_more_than_one_page(stage):
    """Every collection in the document (those tests/test_contract.py leaves to other modules too) walks from its
    first page to its last with the same client, one item per page, each item once; so `cursor` is fuzzed."""
    assert len(stage.cursors) >= 30
    single = sorted(path for path, cursors in stage.cursors.items() if not cursors)
    assert single == [], f"listings the stage gives one page only: {single}"


@pytest.mark.parametrize("path,method,op", fuzzed_operations(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_request_the_document_allows_is_refused_for_a_reason_it_could_state(stage, path, method, op):
    caller = CALLERS[tuple(sorted({n for r in op.get("security", []) for n in r}))]
    found: dict[tuple[str, str], Any] = {}  # every (field, code) the schema could have stated, with an example
    statuses: set[int] = set()

    @FUZZ_SETTINGS
    @given(query=query_strategy(op, stage, path), body=body_strategy(path, op, stage))
    def check(query: dict, body: tuple):
        media, data = body
        url = stage.url(method, path, query)
        if media == "multipart/form-data":  # files as the test client takes them: (stream, file name)
            data = {name: [(io.BytesIO(f[0]), f[1]) for f in value] if isinstance(value, list)
                    else (io.BytesIO(value[0]), value[1]) if isinstance(value, tuple) else value
                    for name, value in data.items()}
        kwargs = {} if media is None else {"data": data, "content_type": media}
        resp = stage.client.open(url, method=method.upper(), headers=stage.headers[caller], **kwargs)
        assert resp.status_code < 500, (url, resp.status_code, resp.get_data(as_text=True)[:300])
        statuses.add(resp.status_code)
        problem = answer_problem(op, resp)
        if problem:
            found.setdefault(("(answer)", problem), (url, str(body[1])[:300]))
        batch = resp.get_json(silent=True) if resp.status_code == 200 and path.endswith("/batch") else None
        for item in (batch or {}).get("results", []):  # a batch refuses items one by one, in a 200
            item_schema = resolve(resolve(op["requestBody"]["content"]["application/json"]["schema"])["properties"]["items"])
            answer = {"status": 422, "errors": [{**e, "field": f"items[{item['index']}].{e['field']}"}
                                                for e in item.get("errors") or []]}
            for refusal in looser_than_the_code(op, answer, media):
                found.setdefault(refusal, (url, str(body[1])[:300]))
        if resp.status_code >= 400:
            answer = (openrosa_answer(resp.status_code, resp.data) if path.startswith("/openrosa/")
                      else resp.get_json())
            shown = body[1] if media != "multipart/form-data" else {k: v[1] if isinstance(v, tuple) else v
                                                                     for k, v in body[1].items()}
            for refusal in looser_than_the_code(op, answer, media):
                found.setdefault(refusal, (url, str(shown)[:300]))

    singleton = "{" not in path and method in ("put", "patch") and "get" in DOCUMENT["paths"][path]
    before = stage.client.get(path, headers=stage.headers[caller]).get_json() if singleton else None
    try:
        check()
    finally:  # a setting of the organization's (the SMS policy): as it was, for the operations after this one
        if singleton:
            made(stage.client.open(path, method=method.upper(), json=before, headers=stage.headers[caller]))
    if not any(code < 400 for code in statuses) and (method, path) not in NEVER_ACCEPTED:
        pytest.fail(f"{method.upper()} {path}: no request was accepted ({sorted(statuses)}): the fuzz does not reach "
                    "what follows the checks; give it stored values (`stage`) or list it in NEVER_ACCEPTED with why")
    if found:
        pytest.fail(f"{method.upper()} {path}: refused requests its schema allows:\n" + "\n".join(
            f"  {field or '(request)'}: {code}  e.g. {url} {body}" for (field, code), (url, body) in sorted(found.items())))

"""The API contract, declared once next to each route and rendered as the OpenAPI 3.1 document.

A route declares itself with `@operation(...)` between the blueprint decorator and `@endpoint`::

    @bp.get("")
    @operation("List the organization's forms", listing=schemas.Form)
    @endpoint()
    def list_forms(conn, caller): ...

- `body`: the pydantic model of the JSON request body; its JSON Schema (bounds included) goes in the document.
  `upload` (`Upload`) declares a multipart/form-data body part by part, `text_body` other text media (text/csv).
- `returns`: the model of the success answer. Collections pass `listing=Model` instead: the operation takes
  `limit` and `cursor` and answers `{"items": [Model], "next_cursor": ...}` (fieldpipe/paging.py).
- `status`: the success status (200 by default, 201 for creations, 204 without a body).
- `query`: the route's other query parameters (`Query`). A name ending in `*` (`answer.*`) accepts every
  parameter with that prefix.
- `problems`: problem slugs (fieldpipe/problems.py) the route raises itself. The ones that follow from the
  declaration are added here: 401 for a missing or bad key, 403 on admin routes, 404 when the path names a
  resource, 422 for bad query parameters and bodies, 400/413/415 for unreadable bodies.
- `examples`: named request bodies, shown in the reference (and posted by tests).

Unknown query parameters are rejected on every declared route with a 422 naming them (`check_query`), so a
typo such as `?limt=5` is not silently ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from flask import Flask, current_app, request
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from fieldpipe import domains, paging
from fieldpipe.orgs import KEY_CACHE_SECONDS
from fieldpipe.problems import CATALOGUE, FieldError, invalid

REF = "#/components/schemas/{model}"
TITLE = "fieldpipe API"
DESCRIPTION = """Form responses, school assessments and their outbound messages, for field apps and integrations.

**Keys.** Send an API key as `Authorization: Bearer fpk_...` (`fieldpipe keys create --org ORG --role admin|collector`).
Collector keys post and read; admin keys also manage forms, rosters, webhooks, messages and keys. A revoked key
stops working within {cache} seconds (keys are cached that long).

**Listings.** Every collection answers `{{"items": [...], "next_cursor": "..." | null}}` and takes `limit`
(1 to {max_limit}, default {default_limit}) and `cursor` (the previous page's `next_cursor`, unchanged).
Pass the cursor until it is `null`. Filters keep their own names.

**Updates.** `PATCH` with a partial JSON body: members you send replace the stored ones, members you leave out
stay as they are. Response edits are the exception that proves the rule: `PATCH` of a response makes a new
revision and keeps the earlier ones.

**Bounds of every value** (fieldpipe/domains.py, docs/api-domains.md): strings at most {string_max} characters
of {text_rule} (a `text` answer {text_max}, a collector id {name_max}); object keys at most {key_max} characters;
nesting at most {depth} deep; integers within ±{int_max}; decimals within ±{dec_max:g} (exclusive); timestamps
with an offset between {ts_min} and {ts_max}; query parameter values at most {query_max} characters.

**Errors.** Every error is `application/problem+json` (RFC 9457) with a stable `code` (see the `Problem` schema
and the catalogue below). A 422 lists each offending field in `errors`. Unknown query parameters are rejected
with a 422 naming them.

{catalogue}
"""


@dataclass(frozen=True)
class Query:
    name: str
    schema: dict
    description: str
    required: bool = False

    def accepts(self, name: str) -> bool:
        return name.startswith(self.name[:-1]) if self.name.endswith("*") else name == self.name


LISTING_QUERY = (
    Query("limit", {"type": "integer", "minimum": 1, "maximum": paging.MAX_LIMIT, "default": paging.DEFAULT_LIMIT},
          f"Items per page, 1 to {paging.MAX_LIMIT}"),
    Query("cursor", {"type": "string", "minLength": 1}, "The next_cursor of the previous page, unchanged"),
)


@dataclass(frozen=True)
class Upload:
    """A multipart/form-data request: each part's JSON Schema (a file is `{"type": "string", "format": "binary"}`,
    see `file_part`), which are required, what any other part may be, and the content types of the file parts."""

    parts: dict[str, dict]
    required: tuple[str, ...] = ()
    other_parts: dict | None = None
    encoding: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def schema(self) -> dict:
        schema: dict[str, Any] = {"type": "object", "required": list(self.required), "properties": self.parts,
                                  "additionalProperties": self.other_parts if self.other_parts else False}
        return schema


def file_part(description: str, checked_against: str | None = None, many: bool = False) -> dict:
    """A multipart part holding a file; `checked_against`: what its content is checked against (a file format's
    grammar, a form's questions), which a schema cannot state."""
    part: dict[str, Any] = {"type": "string", "format": "binary", "description": description}
    if checked_against:
        part["x-checked-against"] = checked_against
    return {"type": "array", "items": part, "description": description} if many else part


@dataclass
class Operation:
    summary: str
    description: str | None = None
    body: type[BaseModel] | None = None
    upload: Upload | None = None  # the multipart/form-data alternative (or only form) of the body
    text_body: dict[str, dict] = field(default_factory=dict)  # other text media (text/csv): media -> schema
    returns: type[BaseModel] | None = None
    produces: str = "application/json"
    listing: type[BaseModel] | None = None
    status: int = 200
    query: tuple[Query, ...] = ()
    problems: tuple[str, ...] = ()
    examples: dict[str, Any] = field(default_factory=dict)
    extra_responses: dict[str, dict] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    tag: str | None = None
    # A protocol of its own (OpenRosa): HTTP Basic with an API key as password, errors in its own envelope,
    # query parameters as its clients send them (not rejected).
    protocol: str | None = None

    @property
    def all_query(self) -> tuple[Query, ...]:
        return (*LISTING_QUERY, *self.query) if self.listing else self.query

    def accepts(self, name: str) -> bool:
        return any(q.accepts(name) for q in self.all_query)


def operation(summary: str, **kwargs: Any) -> Callable:
    """Declare a route's contract (see the module docstring)."""

    def decorate(view: Callable) -> Callable:
        view.openapi = Operation(summary, **kwargs)
        return view

    return decorate


def declared(view: Callable | None) -> Operation | None:
    return getattr(view, "openapi", None)


def check_query() -> None:
    """422 naming each query parameter the matched route does not declare."""
    op = declared(current_app.view_functions.get(request.endpoint))
    if op is None or op.protocol:
        return
    unknown = sorted({name for name in request.args if not op.accepts(name)})
    if unknown:
        accepted = ", ".join(q.name for q in op.all_query) or "none"
        raise invalid([FieldError(name, "unknown_parameter", f"this operation takes no such query parameter "
                                                             f"(accepted: {accepted})") for name in unknown])


def check_query_of_open_routes() -> None:
    """`check_query` for routes without a key (health, docs); `endpoint` runs it after authenticating the rest."""
    if not getattr(current_app.view_functions.get(request.endpoint), "fieldpipe_auth", None):
        check_query()


# --- the document -----------------------------------------------------------------------------------------------

_PATH_PARAM = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")


def openapi_path(rule: str) -> str:
    return _PATH_PARAM.sub(lambda m: "{" + m.group(2) + "}", rule)


def _path_parameters(rule: str) -> list[dict]:
    params = []
    for converter, name in _PATH_PARAM.findall(rule):
        schema = {"type": "integer", "minimum": 0} if converter == "int" else {"type": "string", "minLength": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    return params


def _problems(view: Callable, op: Operation, rule: str) -> list[str]:
    slugs = list(op.problems)
    auth = getattr(view, "fieldpipe_auth", None)
    if auth:
        slugs.append("unauthenticated")
    if auth in ("admin", "student"):
        slugs.append("forbidden")
    if "<" in rule:
        slugs.append("not-found")
    if not op.protocol:
        slugs.append("validation-failed")  # any unknown query parameter, and every listing's limit and cursor
    if op.body is not None:
        slugs.append("malformed-json")
    if (op.body is not None or op.upload is not None or op.text_body) and not op.protocol:
        slugs += ["payload-too-large", "unsupported-media-type"]
    return list(dict.fromkeys(slugs))


def _problem_responses(slugs: list[str], media: str = "application/problem+json") -> dict[str, dict]:
    by_status: dict[str, list[str]] = {}
    for slug in slugs:
        by_status.setdefault(str(CATALOGUE[slug].status), []).append(slug)
    responses = {}
    for status, group in sorted(by_status.items()):
        description = "; ".join(f"`{CATALOGUE[s].code}` {s}: {CATALOGUE[s].title}" for s in group)
        examples = {s: {"value": _problem_example(s)} for s in group}
        content = ({"schema": {"$ref": REF.format(model="Problem")}, "examples": examples}
                   if media == "application/problem+json" else {"schema": {"type": "string"}})
        responses[status] = {"description": description, "content": {media: content}}
    return responses


def _problem_example(slug: str) -> dict:
    problem = CATALOGUE[slug]
    body = {"type": f"/problems/{slug}", "title": problem.title, "status": problem.status, "code": problem.code}
    if slug == "validation-failed":
        body["detail"] = "1 field(s) failed validation"
        body["errors"] = [{"field": "limit", "code": "range", "message": f"must be an integer from 1 to {paging.MAX_LIMIT}"}]
    return body


def _operation_object(view: Callable, op: Operation, rule: str, method: str, models: set) -> dict:
    auth = getattr(view, "fieldpipe_auth", None)
    doc: dict[str, Any] = {"summary": op.summary, "operationId": method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", rule).strip("_"),
                           "tags": [op.tag or rule.split("/")[3] if rule.startswith("/api/v1/") else "service"]}
    description = [op.description] if op.description else []
    if auth == "admin":
        description.append("Needs an admin key.")
    if auth == "student":
        description.append("Needs a signed-in student's token (POST /api/v1/auth/student), for that student only.")
    if description:
        doc["description"] = "\n\n".join(description)
    doc["security"] = ([{"studentToken": []}] if auth == "student" else [{"apiKey": []}] if auth
                       else [{"openRosa": []}] if op.protocol else [])
    doc["parameters"] = _path_parameters(rule) + [
        {"name": q.name.rstrip("*") + ("{key}" if q.name.endswith("*") else ""), "in": "query",
         "required": q.required, "schema": state_the_domain(q.schema, domains.QUERY_MAX_LENGTH),
         "description": q.description} for q in op.all_query]
    content: dict[str, Any] = {}
    if op.body is not None:
        models.add(op.body)
        entry: dict[str, Any] = {"schema": {"$ref": REF.format(model=op.body.__name__)}}
        if op.examples:
            entry["examples"] = {name: {"value": value} for name, value in op.examples.items()}
        content["application/json"] = entry
    for media, schema in op.text_body.items():
        content[media] = {"schema": state_the_domain(schema)}
    if op.upload is not None:
        content["multipart/form-data"] = {"schema": state_the_domain(op.upload.schema()), "encoding": {
            name: {"contentType": ", ".join(types)} for name, types in op.upload.encoding.items()}}
    if content:
        doc["requestBody"] = {"required": True, "content": content}
    success: dict[str, Any] = {"description": "OK" if op.status == 200 else "Created" if op.status == 201 else "No content"}
    answer = op.listing or op.returns
    if op.produces != "application/json":
        success["content"] = {op.produces: {"schema": {"type": "string"}}}
    elif answer is not None:
        models.add(answer)
        schema = {"$ref": REF.format(model=answer.__name__)}
        if op.listing:
            schema = {"type": "object", "required": ["items", "next_cursor"], "additionalProperties": False,
                      "properties": {"items": {"type": "array", "items": schema},
                                     "next_cursor": {"type": ["string", "null"],
                                                     "description": "Pass as `cursor` for the next page; null on the last"}}}
        success["content"] = {"application/json": {"schema": schema}}
    if op.headers:
        success["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in op.headers.items()}
    problem_media = op.produces if op.protocol else "application/problem+json"
    doc["responses"] = {str(op.status): success, **op.extra_responses,
                        **_problem_responses(_problems(view, op, rule), problem_media)}
    return doc


# --- the text domain, stated on every string a request carries ---------------------------------------------------

JSON_VALUE = "JsonValue"  # any JSON value within the body domain (free-form members: settings, answers, ...)


def _json_value_schema() -> dict:
    ref = {"$ref": REF.format(model=JSON_VALUE)}
    return {"description": f"Any JSON value within the body domain: strings are {domains.TEXT_RULE}, object keys at "
                           f"most {domains.KEY_MAX_LENGTH} characters, nesting at most {domains.JSON_MAX_DEPTH} deep",
            "anyOf": [{"type": "null"}, {"type": "boolean"}, {"type": "number"},
                      domains.json_schema_string(), {"type": "array", "items": ref},
                      {"type": "object", "propertyNames": domains.json_schema_string(domains.KEY_MAX_LENGTH),
                       "additionalProperties": ref}]}


def state_the_domain(schema: Any, max_length: int = domains.STRING_MAX_LENGTH) -> Any:
    """The request schema with what every value of a body must be (fieldpipe/domains.py) stated where the model
    leaves it open: a string without a pattern gets the text domain's, an object's free-form members are
    `JsonValue`s under keys within the key domain. Applied to every request body and query parameter."""
    if isinstance(schema, list):
        return [state_the_domain(s, max_length) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: state_the_domain(v, max_length) if k in ("items", "anyOf", "oneOf", "prefixItems") else v
           for k, v in schema.items()}
    for members in ("properties", "patternProperties"):
        if members in out:
            out[members] = {k: state_the_domain(v, max_length) for k, v in schema[members].items()}
    if out.get("type") == "string" and "enum" not in out and "const" not in out and out.get("format") != "binary":
        text = domains.json_schema_string(max_length)
        out["maxLength"] = min(out.get("maxLength", max_length), max_length)
        years = {"date-time": domains.TIMESTAMP_YEAR_PATTERN, "date": domains.DATE_YEAR_PATTERN}.get(out.get("format"))
        for pattern in (text["pattern"], years):
            if pattern is None or pattern in [p.get("pattern") for p in out.get("allOf", [])] + [out.get("pattern")]:
                continue
            if "pattern" not in out:
                out["pattern"] = pattern
            else:
                out["allOf"] = [*out.get("allOf", []), {"pattern": pattern}]
    kinds = out.get("type") if isinstance(out.get("type"), list) else [out.get("type")]
    nullable = "null" in kinds or any(o.get("type") == "null" for o in out.get("anyOf", []) + out.get("oneOf", []))
    if "default" in out and out["default"] is None and not nullable:
        del out["default"]  # pydantic's "absent" default; the member may be left out, it may not be null
    if out.get("type") == "array" and "items" not in out:
        out["items"] = {"$ref": REF.format(model=JSON_VALUE)}
    is_object = out.get("type") == "object" or "properties" in out
    if is_object and out.get("additionalProperties", True) is not False:
        extra = out.get("additionalProperties", True)
        out["additionalProperties"] = ({"$ref": REF.format(model=JSON_VALUE)} if extra is True or extra == {}
                                       else state_the_domain(extra, max_length))
        out.setdefault("propertyNames", domains.json_schema_string(domains.KEY_MAX_LENGTH))
    if schema == {}:
        return {"$ref": REF.format(model=JSON_VALUE)}
    return out


def _stated(schemas: dict[str, dict]) -> dict[str, dict]:
    """The domain stated on the request models (answers, `Out` models, describe what the API sends)."""
    from api import schemas as models

    def is_answer(name: str) -> bool:
        model = getattr(models, name, None)
        return isinstance(model, type) and issubclass(model, models.Out)

    return {name: schema if is_answer(name) else state_the_domain(schema) for name, schema in schemas.items()}


def routes(app: Flask) -> list[tuple[str, str, Callable]]:
    """(rule, method, view) of every route of the app except Flask's static files."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method.lower(), app.view_functions[rule.endpoint]))
    return found


def undeclared(app: Flask) -> list[str]:
    """Routes without an `@operation` declaration, as "METHOD rule" (the completeness test lists them)."""
    return [f"{method.upper()} {rule}" for rule, method, view in routes(app) if declared(view) is None]


def document(app: Flask) -> dict:
    from api.schemas import ERROR_MODELS

    paths: dict[str, dict] = {}
    models: set[type[BaseModel]] = set(ERROR_MODELS)
    for rule, method, view in routes(app):
        op = declared(view)
        if op is None:  # the completeness test names it
            continue
        paths.setdefault(openapi_path(rule), {})[method] = _operation_object(view, op, rule, method, models)
    ordered = sorted(models, key=lambda m: m.__name__)
    _, defs = models_json_schema([(m, "validation") for m in ordered], ref_template=REF)
    catalogue = "\n".join(f"| `{p.code}` | {p.status} | `{slug}` | {p.title} |" for slug, p in CATALOGUE.items())
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": "1.0.0", "description": DESCRIPTION.format(
            cache=KEY_CACHE_SECONDS, max_limit=paging.MAX_LIMIT, default_limit=paging.DEFAULT_LIMIT,
            string_max=domains.STRING_MAX_LENGTH, text_rule=domains.TEXT_RULE, text_max=domains.TEXT_MAX_LENGTH,
            name_max=domains.NAME_MAX_LENGTH, key_max=domains.KEY_MAX_LENGTH, depth=domains.JSON_MAX_DEPTH,
            int_max=domains.INTEGER_MAX, dec_max=domains.DECIMAL_MAX_ABS, ts_min=domains.TIMESTAMP_MIN.isoformat(),
            ts_max=domains.TIMESTAMP_MAX.isoformat(), query_max=domains.QUERY_MAX_LENGTH,
            catalogue="| code | status | type | title |\n|---|---|---|---|\n" + catalogue)},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**_stated(defs.get("$defs", {})), JSON_VALUE: _json_value_schema()},
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "An fpk_... API key"},
                "studentToken": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                 "description": "A student's token from POST /api/v1/auth/student"},
                "openRosa": {"type": "http", "scheme": "basic",
                             "description": "Any user name (it names the device); an API key of the organization "
                                            "as the password"}},
        },
    }

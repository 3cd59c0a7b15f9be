"""The API against its own OpenAPI document, walked as an integrator would walk it.

- Every route is declared; a route without a declaration is caught.
- The documented examples, posted in order to a fresh organization, succeed.
- Every collection in the document pages with one client, through more than one page, and every item and
  every answer matches its documented schema.
- Every status the document lists for an operation is one the operation answered here, and every status an
  operation answered here is documented.
"""

from __future__ import annotations

import copy
import re
import time
from pathlib import Path
from urllib.parse import quote

import jsonschema
import pytest
from flask import Flask
from openapi_spec_validator import validate

from api import examples, spec
from api.context import endpoint
from fieldpipe.orgs import create_key
from fieldpipe.sms.outbox import NewMessage, enqueue as enqueue_sms
from fieldpipe.webhooks.delivery import enqueue as enqueue_events
from fieldpipe.webhooks.secret_box import SECRET_KEY_ENV
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.helpers import auth

HOOK_URL = "http://127.0.0.1:9/hooks"  # never called: deliveries are only queued here


def test_a_route_without_a_declaration_is_caught():
    app = Flask(__name__)

    @app.get("/api/v1/declared")
    @spec.operation("Declared")
    @endpoint()
    def declared(conn, caller):
        return {}

    @app.get("/api/v1/forgotten/<int:thing_id>")
    @endpoint()
    def forgotten(conn, caller, thing_id):
        return {}

    assert spec.undeclared(app) == ["GET /api/v1/forgotten/<int:thing_id>"]
    with app.app_context():
        assert list(spec.document(app)["paths"]) == ["/api/v1/declared"]


def test_every_route_is_declared_and_the_document_is_valid(app, client):
    assert spec.undeclared(app) == []
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    for rule, method, _ in spec.routes(app):
        assert method in doc["paths"][spec.openapi_path(rule)], f"{method.upper()} {rule}"
    bodies = [(path, method) for path, item in doc["paths"].items() for method, op in item.items()
              if "application/json" in op.get("requestBody", {}).get("content", {})
              and not op["requestBody"]["content"]["application/json"].get("examples")]
    assert bodies == [], "operations with a body and no example"


def test_the_reference_page_loads_offline(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page must not load anything from the network"
    assets = re.findall(r"(?:src|href)=\"(docs/assets/[^\"]+)\"", html)
    assert sorted(assets) == ["docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css"]
    for asset in assets:
        served = client.get(f"/api/v1/{asset}")
        assert served.status_code == 200 and len(served.data) > 10_000, asset
    assert b"SwaggerUIBundle" in client.get("/api/v1/docs/assets/swagger-ui-bundle.js").data
    assert 'url: "openapi.json"' in html
    doc = client.get("/api/v1/openapi.json").get_json()
    create_form = doc["paths"]["/api/v1/forms"]["post"]["requestBody"]["content"]["application/json"]
    assert create_form["examples"]["household survey"]["value"] == examples.FORM
    assert "422" in doc["paths"]["/api/v1/forms"]["get"]["responses"]


def test_unknown_query_parameters_are_rejected_naming_them(client, admin_key):
    resp = client.get("/api/v1/forms?limt=5&limit=2", headers=auth(admin_key))
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [("limt", "unknown_parameter")]
    assert client.get("/healthz?verbose=1").status_code == 422
    # prefixed filters are declared as a family
    assert client.get("/api/v1/forms/nope/responses?answer.city=pune", headers=auth(admin_key)).status_code == 404


# --- the walk ----------------------------------------------------------------------------------------------------

class Walker:
    """One client for the whole API: fills path parameters, validates answers against the document, and
    remembers which status each operation answered."""

    def __init__(self, client, doc, params):
        self.client, self.doc, self.params = client, doc, params
        self.answered: set[tuple[str, str, str]] = set()

    def url(self, path: str, **overrides) -> str:
        values = {**self.params, **overrides}
        return re.sub(r"{(\w+)}", lambda m: quote(str(values[m.group(1)]), safe=""), path)

    def schema_of(self, path: str, method: str, status: int) -> dict | None:
        response = self.doc["paths"][path][method]["responses"].get(str(status))
        assert response is not None, f"{method.upper()} {path} answered {status}, which is not documented"
        content = response.get("content", {})
        for media in ("application/json", "application/problem+json"):
            if media in content:
                return content[media]["schema"]
        return None

    def call(self, method: str, path: str, *, key=None, expect=None, path_values=None, **kwargs):
        headers = {**kwargs.pop("headers", {}), **(auth(key) if key else {})}
        resp = self.client.open(self.url(path, **(path_values or {})), method=method.upper(), headers=headers, **kwargs)
        self.answered.add((path, method, str(resp.status_code)))
        schema = self.schema_of(path, method, resp.status_code)
        if schema is not None and resp.data:
            self.check(resp.get_json(), schema, f"{method.upper()} {path} {resp.status_code}")
        if expect is not None:
            assert resp.status_code == expect, (method, path, resp.status_code, resp.get_json(silent=True))
        return resp

    def check(self, body, schema, where):
        document = {**schema, "components": self.doc["components"]}
        errors = sorted(jsonschema.Draft202012Validator(document).iter_errors(body), key=str)
        assert not errors, f"{where}: {errors[0].message} at {list(errors[0].absolute_path)}"

    def walk(self, path: str, key: str) -> list:
        """Every item of a collection, one item per page."""
        items, cursor, pages = [], None, 0
        while True:
            query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
            page = self.call("get", path, key=key, query_string=query, expect=200,
                             path_values=WALK_VALUES.get(path)).get_json()
            items += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                return items if pages > 1 else pytest.fail(f"{path} has a single page")


# Operations this walk does not drive to each of their statuses: they need object storage, signed certificates or
# OpenRosa multipart posts, which their own modules set up and test (named here). The checks that follow from
# every declaration (401, 403, 404, 422, 400, 413, 415) still run on them.
ELSEWHERE = {
    "/api/v1/enrollments": "tests/test_enrollment.py",
    "/api/v1/students/{student_id}/leave": "tests/test_enrollment.py",
    "/api/v1/slc/verify": "tests/test_enrollment.py",
    "/api/v1/slc/{certificate_id}": "tests/test_enrollment.py",
    "/api/v1/slc/{certificate_id}/pdf": "tests/test_enrollment.py",
    "/api/v1/slc/{certificate_id}/revoke": "tests/test_enrollment.py",
    "/api/v1/slc-keys": "tests/test_enrollment.py",
    "/api/v1/slc-keys/rotate": "tests/test_enrollment.py",
    "/api/v1/slc-keys/{kid}/revoke": "tests/test_enrollment.py",
    "/api/v1/transfers": "tests/test_enrollment.py",
    "/api/v1/transfers/{transfer_id}/review": "tests/test_enrollment.py",
    "/api/v1/audit": "tests/test_enrollment.py",
    "/.well-known/fieldpipe-slc-keys": "tests/test_enrollment.py",
    "/api/v1/forms/{slug}/responses/{submission_id}/attachments": "tests/test_openrosa.py",
    "/api/v1/forms/{slug}/responses/{submission_id}/attachments/{name}": "tests/test_openrosa.py",
    "/openrosa/{org}/formList": "tests/test_openrosa.py",
    "/openrosa/{org}/forms/{xform_id}/manifest": "tests/test_openrosa.py",
    "/openrosa/{org}/forms/{xform_id}/media/{name}": "tests/test_openrosa.py",
    "/api/v1/forms/{slug}/imports": "tests/test_imports.py",
    "/api/v1/forms/{slug}/export.csv": "tests/test_reporting_downloads.py",
    "/api/v1/forms/{slug}/export.xlsx": "tests/test_reporting_downloads.py",
    "/api/v1/forms/{slug}/imports/template": "tests/test_imports.py",
    "/api/v1/forms/{slug}/imports/{import_id}": "tests/test_imports.py",
    "/openrosa/{org}/forms/{xform_id}/form.xml": "tests/test_openrosa.py",
    "/openrosa/{org}/submission": "tests/test_openrosa.py",
    "/api/v1/classes/{class_id}/student-signins": "tests/test_exams.py",
    "/api/v1/auth/student": "tests/test_exams.py",
    "/api/v1/assessments/{assessment_id}/close": "tests/test_exams.py",
    "/api/v1/students/{student_id}/exams": "tests/test_exams.py",
    "/api/v1/students/{student_id}/exams/{assessment_id}/answers": "tests/test_exams.py",
    "/api/v1/sms-policy": "tests/test_announcements.py",
    "/api/v1/sms-templates": "tests/test_announcements.py",
    "/api/v1/sms-templates/{template_id}": "tests/test_announcements.py",
    "/api/v1/announcements": "tests/test_announcements.py",
    "/api/v1/announcements/{announcement_id}": "tests/test_announcements.py",
    "/api/v1/announcements/{announcement_id}/approve": "tests/test_announcements.py",
    "/api/v1/announcements/{announcement_id}/cancel": "tests/test_announcements.py",
    "/api/v1/announcements/{announcement_id}/recipients": "tests/test_announcements.py",
}
# Listings walked with other path values than the world's defaults: the class results of the class assessment.
WALK_VALUES = {"/api/v1/assessments/{assessment_id}/submissions/class": {"assessment_id": 2}}
GET_STUDENT = ("/api/v1/students/{student_id}", "get")  # the enrollment record; tests/test_enrollment.py


def test_what_is_walked_elsewhere_is_tested_there():
    root = Path(__file__).resolve().parent.parent
    for path, module in ELSEWHERE.items():
        text = (root / module).read_text()
        probe = path.split("{")[0].rstrip("/").rsplit("/", 1)[-1]
        assert probe in text, f"{module} does not exercise {path}"


def listings(doc) -> list[str]:
    return sorted(path for path, item in doc["paths"].items()
                  if "get" in item and any(p["name"] == "cursor" for p in item["get"]["parameters"]))


@pytest.fixture
def world(client, conn, admin_key, collector_key, monkeypatch):
    """An organization holding two or more of everything, made through the documented examples."""
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)
    doc = client.get("/api/v1/openapi.json").get_json()
    walker = Walker(client, doc, {})
    a = admin_key

    def example(path, method="post"):
        return doc["paths"][path][method]["requestBody"]["content"]["application/json"]["examples"]

    def post_examples(path, expect, **path_values):
        for item in example(path).values():
            walker.call("post", path, key=a, json=item["value"], expect=expect, path_values=path_values)

    post_examples("/api/v1/forms", 201)
    walker.call("post", "/api/v1/forms", key=a, json={**examples.FORM, "slug": "village-water-points-2"}, expect=201)
    slug = examples.FORM["slug"]
    for task in (examples.SHEET_TASK, {**examples.TASK, "config": {**examples.TASK["config"], "url": HOOK_URL}}):
        walker.call("post", "/api/v1/forms/{slug}/tasks", key=a, json=task, expect=201, path_values={"slug": slug})
    post_examples("/api/v1/forms/{slug}/responses", 201, slug=slug)
    post_examples("/api/v1/forms/{slug}/responses/batch", 200, slug=slug)
    post_examples("/api/v1/schools", 201)
    walker.call("post", "/api/v1/schools", key=a, json={**examples.SCHOOL, "udise": "02030400102"}, expect=201)
    udise = examples.SCHOOL["udise"]
    post_examples("/api/v1/schools/{udise}/classes", 201, udise=udise)
    walker.call("post", "/api/v1/schools/{udise}/classes", key=a, json={"grade": 6}, expect=201,
                path_values={"udise": udise})
    post_examples("/api/v1/classes/{class_id}/students", 200, class_id=1)
    post_examples("/api/v1/subjects", 201)
    walker.call("post", "/api/v1/subjects", key=a, json={"code": "evs", "name": "Environmental studies"}, expect=201)
    post_examples("/api/v1/assessments", 201)
    post_examples("/api/v1/assessments/{assessment_id}/submissions/student", 201, assessment_id=1)
    post_examples("/api/v1/assessments/{assessment_id}/submissions/class", 201, assessment_id=2)
    post_examples("/api/v1/assessments/{assessment_id}/answers", 201, assessment_id=3)
    # the class assessment in a second class too, so its read-back has two pages
    walker.call("patch", "/api/v1/assessments/{assessment_id}", key=a, json={"class_ids": [1, 2]}, expect=200,
                path_values={"assessment_id": 2})
    walker.call("post", "/api/v1/assessments/{assessment_id}/submissions/class", key=a, expect=201,
                json={**examples.CLASS_RESULTS, "class_id": 2, "submission_id": "5e1d2c3b-4a59-4687-9a0b-1c2d3e4f5a64"},
                path_values={"assessment_id": 2})
    for _ in range(2):
        walker.call("post", "/api/v1/webhooks", key=a, json={**examples.WEBHOOK, "url": HOOK_URL}, expect=201)
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    enqueue_events(conn, [{"organization_id": org, "event": "flag.opened", "event_key": f"k{n}", "data": {}}
                          for n in range(2)])
    enqueue_sms(conn, [NewMessage(f"announcement:{n}", "announcement", org, "+919876543210", "Hello") for n in range(2)]
                + [NewMessage("announcement:bad", "announcement", org, "not a phone", "Hello")])
    conn.execute("""INSERT INTO flags (form_id, response_id, revision, rule_id, severity, notify, message)
                    SELECT form_id, id, revision, 'rule-' || n, 'error', 'none', 'broken'
                      FROM responses, generate_series(1, 2) n""")
    conn.execute("""INSERT INTO operator_notices (organization_id, incident, kind, subject, body, data, email_status)
                    SELECT %s, 'backlog:' || b, 'backlog.exceeded', 'late', 'late', '{}', 'none'
                      FROM unnest(ARRAY['sms', 'webhook']) b""", (org,))
    conn.execute("""INSERT INTO pipeline_failures (pipeline, form_id, error, reason)
                    SELECT 'export_sheets', id, 'DataError', 'psycopg.errors.DataError at jobs.py:1 (export)'
                      FROM forms""")
    walker.call("put", "/api/v1/forms/{slug}/rules", key=a, json=examples.RULES, expect=201, path_values={"slug": slug})
    walker.call("put", "/api/v1/forms/{slug}/rules", key=a, json={"rules": []}, expect=201, path_values={"slug": slug})
    spare_key = create_key(conn, "acme", "collector", "to revoke")
    spare_id = conn.execute("SELECT id FROM api_keys WHERE label = 'to revoke'").fetchone()["id"]
    walker.params = {"slug": slug, "submission_id": examples.SUBMISSION["submission_id"], "udise": udise,
                     "class_id": 1, "student_id": 2, "assessment_id": 1, "webhook_id": 2, "delivery_id": 1,
                     "message_id": 3, "key_id": spare_id, "filename": "swagger-ui.css", "version": 1, "job_id": 1,
                     "certificate_id": 1, "kid": "k1", "transfer_id": 1, "org": "acme", "xform_id": "x", "import_id": 1,
                     "name": "a.jpg", "task_id": 1, "replay_id": 1,
                     "announcement_id": 1, "template_id": 1}
    walker.call("patch", "/api/v1/forms/{slug}/responses/{submission_id}", key=collector_key,
                json=examples.RESPONSE_EDIT, expect=200)
    walker.call("post", "/api/v1/forms/{slug}/tasks/{task_id}/replay", key=a, json=examples.REPLAY, expect=202)
    slips = client.post("/api/v1/classes/1/student-signins", json={"student_ids": [1]}, headers=auth(a)).get_json()
    walker.student_token = client.post("/api/v1/auth/student", json={
        "class_id": 1, "roll_number": slips["slips"][0]["roll_number"], "pin": slips["slips"][0]["pin"]}).get_json()["token"]
    return walker, doc, a, collector_key, spare_key


def test_every_collection_pages_with_one_client(world):
    walker, doc, admin, _, _ = world
    walked = [path for path in listings(doc) if path not in ELSEWHERE]
    assert len(walked) >= 14, walked
    for path in walked:
        items = walker.walk(path, admin)
        assert len(items) >= 2 and len({repr(i) for i in items}) == len(items), path


def test_every_documented_status_is_answered_and_every_answer_documented(world, app, monkeypatch):
    walker, doc, admin, collector, spare_key = world
    call = walker.call
    for path in listings(doc):
        if path in ELSEWHERE:
            continue
        values = WALK_VALUES.get(path)
        call("get", path, key=admin, query_string={"limit": 2}, expect=200, path_values=values)
        call("get", path, key=admin, query_string={"limit": 0}, expect=422, path_values=values)
        call("get", path, key=admin, query_string={"cursor": "not-ours"}, expect=422, path_values=values)

    # success, and the statuses only some operations answer
    submission = {"slug": examples.FORM["slug"]}
    call("post", "/api/v1/forms", key=admin, json=examples.FORM, expect=409)
    call("get", "/api/v1/forms/{slug}", key=admin, expect=200)
    call("patch", "/api/v1/forms/{slug}", key=admin, json={"title": "Water points"}, expect=200)
    call("post", "/api/v1/forms/{slug}/responses", key=collector, json=examples.SUBMISSION, expect=200)
    changed = copy.deepcopy(examples.SUBMISSION)
    changed["answers"]["households"] = 7
    call("post", "/api/v1/forms/{slug}/responses", key=collector, json=changed, expect=409, path_values=submission)
    call("get", "/api/v1/forms/{slug}/responses/{submission_id}", key=collector, expect=200)
    call("post", "/api/v1/schools", key=admin, json=examples.SCHOOL, expect=409)
    call("get", "/api/v1/schools/{udise}", key=admin, expect=200)
    call("post", "/api/v1/schools/{udise}/classes", key=admin, json=examples.CLASS, expect=409)
    call("post", "/api/v1/classes/{class_id}/students", key=admin, data=b"roll_number,name\n3,\xff\n",
         headers={"Content-Type": "text/csv"}, expect=400)
    call("delete", "/api/v1/students/{student_id}", key=admin, expect=200)
    call("post", "/api/v1/subjects", key=admin, json=examples.SUBJECT, expect=409)
    call("get", "/api/v1/assessments/{assessment_id}", key=collector, expect=200)
    call("patch", "/api/v1/assessments/{assessment_id}", key=admin, json=examples.ASSESSMENT_PATCH, expect=200)
    call("get", "/api/v1/assessments/{assessment_id}/summary", key=collector, expect=200)
    call("get", "/api/v1/assessments", key=collector, query_string={"school": "99999999999"}, expect=404)
    etag = call("get", "/api/v1/assessments", key=collector, expect=200).headers["ETag"]
    call("get", "/api/v1/assessments", key=collector, headers={"If-None-Match": etag}, expect=304)
    for path, values in (("/api/v1/assessments/{assessment_id}/submissions/student", None),
                         ("/api/v1/assessments/{assessment_id}/submissions/class", {"assessment_id": 2}),
                         ("/api/v1/assessments/{assessment_id}/results.csv", None)):
        etag = call("get", path, key=collector, expect=200, path_values=values).headers["ETag"]
        call("get", path, key=collector, headers={"If-None-Match": etag}, expect=304, path_values=values)
    for path, body, assessment_id, different in (
            ("/api/v1/assessments/{assessment_id}/submissions/student", examples.MARKS, 1,
             {"entries": [{"student_id": 1, "is_present": False}]}),
            ("/api/v1/assessments/{assessment_id}/submissions/class", examples.CLASS_RESULTS, 2,
             {"results": [{"item": "R1", "present": 2, "cleared": 2}]}),
            ("/api/v1/assessments/{assessment_id}/answers", examples.EXAM_ANSWERS, 3,
             {"answers": [{"student_id": 1, "question": "Q1", "answer": "2/6"}]})):
        call("post", path, key=collector, json=body, expect=200, path_values={"assessment_id": assessment_id})
        call("post", path, key=collector, json={**body, **different}, expect=409,
             path_values={"assessment_id": assessment_id})
    call("get", "/api/v1/messages/{message_id}", key=admin, expect=200)
    call("post", "/api/v1/messages/{message_id}/resend", key=admin, expect=200)
    call("post", "/api/v1/messages/{message_id}/resend", key=admin, expect=409)
    with app.extensions["fieldpipe_pool"].connection() as conn:
        conn.execute("UPDATE sms_messages SET status = 'failed' WHERE id = 3")
    call("post", "/api/v1/messages/{message_id}/retry", key=admin, expect=200)
    call("post", "/api/v1/messages/{message_id}/retry", key=admin, expect=409)
    call("get", "/api/v1/deliveries/{delivery_id}", key=admin, expect=200)
    call("post", "/api/v1/deliveries/{delivery_id}/retry", key=admin, expect=409)
    with app.extensions["fieldpipe_pool"].connection() as conn:
        conn.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE id = 1")
    call("post", "/api/v1/deliveries/{delivery_id}/retry", key=admin, expect=200)
    call("post", "/api/v1/deliveries/retry", key=admin, query_string={"kind": "flag.opened"}, expect=200)
    call("post", "/api/v1/deliveries/retry", key=admin, query_string={"status": "queued"}, expect=422)
    call("post", "/api/v1/messages/retry", key=admin, query_string={"status": "unknown"}, expect=200)
    call("post", "/api/v1/messages/retry", key=admin, query_string={"since": "yesterday"}, expect=422)
    call("put", "/api/v1/notices/recipients", key=admin, json=examples.NOTICE_RECIPIENTS, expect=200)
    call("get", "/api/v1/notices/recipients", key=admin, expect=200)
    call("delete", "/api/v1/webhooks/{webhook_id}", key=admin, expect=204)
    assert walker.client.get("/api/v1/forms", headers=auth(spare_key)).status_code == 200  # now cached
    call("post", "/api/v1/keys/{key_id}/revoke", key=admin, expect=200)
    assert walker.client.get("/api/v1/forms", headers=auth(spare_key)).status_code == 401  # at once here
    call("put", "/api/v1/forms/{slug}/rules", key=admin, json=examples.RULES, expect=201)
    call("put", "/api/v1/forms/{slug}/rules", key=admin, json=examples.RULES, expect=200)
    call("get", "/api/v1/forms/{slug}/rules", key=admin, expect=200)
    call("get", "/api/v1/forms/{slug}/rules/versions/{version}", key=admin, expect=200)
    call("post", "/api/v1/forms/{slug}/rules/dry-run", key=admin, json=examples.RULES, expect=200)
    monkeypatch.setenv("FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT", "0")
    job = call("post", "/api/v1/forms/{slug}/rules/dry-run", key=admin, json=examples.RULES, expect=202).get_json()
    monkeypatch.delenv("FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT")
    call("get", "/api/v1/forms/{slug}/rules/dry-runs/{job_id}", key=admin, expect=200,
         path_values={"job_id": job["id"]})
    wait_for_job(app, job["id"])
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    call("post", "/api/v1/webhooks", key=admin, json=examples.WEBHOOK, expect=503)
    call("post", "/api/v1/forms/{slug}/tasks", key=admin, expect=503,
         json={**examples.TASK, "config": {**examples.TASK["config"], "url": HOOK_URL}})
    monkeypatch.delenv("FIELDPIPE_ENV")
    call("get", "/api/v1/forms/{slug}/tasks/{task_id}", key=admin, expect=200)
    call("patch", "/api/v1/forms/{slug}/tasks/{task_id}", key=admin, json=examples.TASK_PATCH, expect=200)
    call("get", "/api/v1/forms/{slug}/tasks/{task_id}/replays/{replay_id}", key=admin, expect=200)
    call("delete", "/api/v1/forms/{slug}/tasks/{task_id}", key=admin, expect=204, path_values={"task_id": 2})
    for path in ("/healthz", "/readyz", "/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/{filename}",
                 "/metrics"):
        call("get", path, expect=200)

    # what follows from each declaration, for every operation
    app.config["MAX_CONTENT_LENGTH"], limit = 2000, app.config["MAX_CONTENT_LENGTH"]
    try:
        for path, item in doc["paths"].items():
            for method, op in item.items():
                codes = op["responses"]
                if op["security"] and "openRosa" in op["security"][0]:
                    call(method, path, expect=401)  # its own protocol: Basic auth, XML errors, any query
                    continue
                # a student's routes take that student's token, and their own student id
                student_route = op["security"] == [{"studentToken": []}]
                key, own = (walker.student_token, {"student_id": 1}) if student_route else (admin, {})
                if "401" in codes and op["security"]:
                    call(method, path, expect=401, path_values=own)
                if "403" in codes and (path not in ELSEWHERE or student_route):
                    call(method, path, key=collector, expect=403, path_values=own)
                if "404" in codes and set(re.findall(r"{(\w+)}", path)) - set(own):
                    call(method, path, key=key, expect=404, **({"json": {}} if "requestBody" in op else {}),
                         path_values={name: "99999999999" for name in re.findall(r"{(\w+)}", path)}
                         | ({"filename": "nothing.js"} if "filename" in path else {}) | own)
                call(method, path, key=key, query_string={"no_such_parameter": "1"}, expect=422, path_values=own)
                if "application/json" in op.get("requestBody", {}).get("content", {}):
                    call(method, path, key=key, data=b"{not json", headers={"Content-Type": "application/json"},
                         expect=400, path_values=own)
                    call(method, path, key=key, data=b"x=1", headers={"Content-Type": "text/plain"}, expect=415,
                         path_values=own)
                    call(method, path, key=key, json={"padding": "x" * 3000}, expect=413, path_values=own)
                    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    if doc["components"]["schemas"][ref.rsplit("/", 1)[1]].get("required") and path not in ELSEWHERE:
                        call(method, path, key=key, json={}, expect=422)  # members the body must have
    finally:
        app.config["MAX_CONTENT_LENGTH"] = limit

    documented = {(path, method, status) for path, item in doc["paths"].items()
                  for method, op in item.items() for status in op["responses"]}
    missing = {(p, m, s) for p, m, s in documented - walker.answered
               if not (p == "/readyz" and s == "503")  # test_readiness_fails_without_the_database
               and p not in ELSEWHERE and (p, m) != GET_STUDENT}
    assert sorted(missing) == [], "\n".join(map(str, sorted(missing)))


def wait_for_job(app, job_id: int) -> None:
    """The dry-run thread finishes before the next test empties the tables under it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with app.extensions["fieldpipe_pool"].connection() as conn:
            if conn.execute("SELECT status FROM rules_dry_runs WHERE id = %s", (job_id,)).fetchone()["status"] in (
                    "done", "failed"):
                return
        time.sleep(0.1)
    pytest.fail(f"dry run {job_id} did not finish")


def test_readiness_fails_without_the_database(pg_server):
    from api import create_app

    down = create_app({"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "POOL_SIZE": 1})
    try:
        resp = down.test_client().get("/readyz")
        assert resp.status_code == 503 and resp.get_json()["code"] == "503.1"
    finally:
        down.extensions["fieldpipe_pool"].close(timeout=0)


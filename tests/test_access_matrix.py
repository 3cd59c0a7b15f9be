"""Who may call what, tried on every route of the app, so a route added later cannot be forgotten.

The routes come from Flask's route table; which of them need an admin key comes from the OpenAPI document
(an operation that documents 403), an independent statement of intent: flipping `endpoint(admin=True)` in a
view does not change it. Each bad actor must get the refusal and change nothing: every table's content is
fingerprinted before and after.
- a collector key on an admin route: 403;
- a collector key on any other route: never 403 (so an admin-only flag set by mistake is caught too);
- no key: 401;
- another organization's admin key with this organization's ids: 404, for every route that takes an id;
- a student's token (issue 25) on every route that takes an API key: 403; on the student routes, an API key:
  403, no token: 401, another student's id: 403, another organization's student: 403 or 404.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from fieldpipe.imports.jobs import incoming_key, register as register_import
from fieldpipe.sms.outbox import NewMessage, enqueue as enqueue_sms
from fieldpipe.webhooks.delivery import enqueue as enqueue_deliveries
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.helpers import auth, submission

UDISE = "02010100777"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")


def api_routes(app, auth_kind: tuple[str, ...] = ("admin", "key")) -> list[tuple[str, str, str]]:
    """(method, Flask rule, OpenAPI path) for every route under /api/v1 but the docs that takes an API key
    (or, with `auth_kind=("student",)`, a student's token)."""
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.endpoint.startswith("docs."):
            continue
        if getattr(app.view_functions[rule.endpoint], "fieldpipe_auth", None) not in auth_kind:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        routes += [(method, rule.rule, path) for method in sorted(rule.methods & set(METHODS))]
    assert len(routes) > (20 if "key" in auth_kind else 2), "the route table looks empty"
    return routes


def admin_only(doc: dict, method: str, path: str) -> bool:
    operation = doc["paths"][path][method.lower()]
    return "403" in operation["responses"]


def fill(rule: str, ids: dict) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in ids, f"route {rule} takes <{name}>: give the access matrix a real {name} to try"
        return str(ids[name])

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", value, rule)


def fingerprint(conn) -> dict[str, str]:
    """Every application table's full content as one hash per table: any write shows."""
    tables = [r["tablename"] for r in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")]
    return {t: conn.execute(f'SELECT md5(coalesce(string_agg(x::text, \'|\' ORDER BY x::text), \'\')) AS h '
                            f'FROM "{t}" x').fetchone()["h"] for t in tables}


@pytest.fixture
def world(client, conn, admin_key, make_form, object_store):
    """One organization (acme) with one of everything a route can name, each in a state a route could change:
    a form with a response (with an attached photo), a school with a class and a student, a subject, an assessment, a failed SMS
    message and a failed webhook delivery. Returns the ids by the name of the route parameter."""
    h = auth(admin_key)
    form = make_form(slug="acme-only-survey")
    response = submission()
    assert client.post(f"/api/v1/forms/{form['slug']}/responses", json=response, headers=h).status_code == 201
    assert client.post("/api/v1/schools", json={"udise": UDISE, "name": "GPS Access", "district": "Shimla",
                                                 "block": "Mashobra"}, headers=h).status_code == 201
    klass = client.post(f"/api/v1/schools/{UDISE}/classes", json={"grade": 5, "section": "A"}, headers=h).get_json()
    student = client.post(f"/api/v1/classes/{klass['id']}/students", headers=h,
                          json={"students": [{"roll_number": "1", "name": "Asha"}]}).get_json()["students"][0]
    assert client.post("/api/v1/subjects", json={"code": "maths", "name": "Maths"}, headers=h).status_code == 201
    assessment = client.post("/api/v1/assessments", headers=h, json={
        "title": "LO check", "type": "LO", "evaluation": "Marks", "outcome": "TSP",
        "items": [{"key": "LO1", "max_marks": 10}], "pass_criterion": {"min_percent": 40},
        "class_ids": [klass["id"]], "deadline": "2099-01-01T00:00:00+05:30"})
    assert assessment.status_code == 201, assessment.get_json()
    hook = client.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["flag.opened"]},
                       headers=h)
    assert hook.status_code == 201, hook.get_json()
    org = conn.execute("SELECT id FROM organizations WHERE slug = 'acme'").fetchone()["id"]
    enqueue_deliveries(conn, [{"organization_id": org, "event": "flag.opened", "event_key": "flag.opened:1",
                               "data": {"flag": 1}}])
    enqueue_sms(conn, [NewMessage("announcement:1:+919876543210", "announcement", org, "+919876543210", "hello")])
    object_store.put("attachments/matrix/photo", b"\xff\xd8", content_type="image/jpeg")
    conn.execute("""INSERT INTO attachments (response_id, name, question_type, object_key, content_type, size, sha256,
                                             received_at)
                    SELECT id, 'photo.jpg', 'image', 'attachments/matrix/photo', 'image/jpeg', 2, 'x', now()
                      FROM responses""")
    newcomer = client.post("/api/v1/enrollments", headers=h, json={
        "class_id": klass["id"], "name": "Kiran", "date_of_birth": "2015-01-01", "gender": "other",
        "guardians": [{"name": "Mohan", "relation": "father", "phone": "+919811111111"}], "admitted_on": "2026-11-02",
        "out_of_state": {"state": "Punjab", "school_name": "GSSS Ropar", "certificate_number": "TC-1",
                         "issued_on": "2026-11-01"}}).get_json()
    template = client.post("/api/v1/sms-templates", headers=h, json={
        "name": "holiday", "kind": "holiday", "bodies": {"hi": "{school} में {date} को अवकाश"}}).get_json()
    announcement = client.post("/api/v1/announcements", headers=h, json={
        "template_id": template["id"], "values": {"date": "15 August"}, "audience": {"student_ids": [newcomer["id"]]},
        "send_at": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)).isoformat()})
    assert announcement.status_code == 202, announcement.get_json()["errors"]
    certificate = client.post(f"/api/v1/students/{newcomer['id']}/leave", json={"reason": "Moved", "date": "2026-11-20"},
                              headers=h).get_json()["slc"]
    conn.execute("UPDATE webhook_deliveries SET status = 'failed'")
    conn.execute("UPDATE sms_messages SET status = 'failed'")
    rules = {"rules": [{"id": "named", "expression": "name is not empty", "message": "no name"}]}
    assert client.put(f"/api/v1/forms/{form['slug']}/rules", json=rules, headers=h).status_code == 201
    dry_run = conn.execute("""INSERT INTO rules_dry_runs (form_id, document, created_by, lease_until)
                              SELECT id, '{}', 'test', now() + interval '1 hour' FROM forms RETURNING id""").fetchone()
    an_import = register_import(conn, "acme", form["slug"], "w.csv", incoming_key("acme", form["slug"], "w.csv"), "upload")
    task = client.post(f"/api/v1/forms/{form['slug']}/tasks", json={"kind": "sheet_export", "config": {
        "spreadsheet_id": "s"}}, headers=h).get_json()
    replay = client.post(f"/api/v1/forms/{form['slug']}/tasks/{task['id']}/replay", headers=h, json={
        "from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}).get_json()
    return {
        "slug": form["slug"], "submission_id": response["submission_id"], "udise": UDISE, "class_id": klass["id"],
        "student_id": student["id"], "assessment_id": assessment.get_json()["id"],
        "webhook_id": hook.get_json()["id"],
        "delivery_id": conn.execute("SELECT id FROM webhook_deliveries").fetchone()["id"],
        "message_id": conn.execute("SELECT id FROM sms_messages").fetchone()["id"],
        "version": 1, "job_id": dry_run["id"],
        "name": "photo.jpg",
        "transfer_id": newcomer["transfer_review"]["id"], "certificate_id": certificate["id"], "kid": certificate["kid"],
        "import_id": an_import["id"], "task_id": task["id"], "replay_id": replay["id"],
        "template_id": template["id"], "announcement_id": announcement.get_json()["id"],
        "key_id": conn.execute("SELECT min(id) AS id FROM api_keys WHERE role = 'admin'").fetchone()["id"],
    }


def call(client, method: str, url: str, key: str | None):
    headers = auth(key) if key else {}
    return client.open(url, method=method, json={} if method in ("POST", "PUT", "PATCH") else None, headers=headers)


def test_the_issue_12_routes_are_among_the_admin_ones(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    admin = {(m, p) for m, _, p in api_routes(app) if admin_only(doc, m, p)}
    assert {("DELETE", "/api/v1/webhooks/{webhook_id}"), ("POST", "/api/v1/schools"),
            ("POST", "/api/v1/messages/{message_id}/resend"), ("POST", "/api/v1/forms")} <= admin


def test_a_collector_gets_403_on_every_admin_route_and_changes_nothing(app, client, conn, world, collector_key):
    doc = client.get("/api/v1/openapi.json").get_json()
    before = fingerprint(conn)
    wrong = []
    for method, rule, path in api_routes(app):
        if not admin_only(doc, method, path):
            continue
        resp = call(client, method, fill(rule, world), collector_key)
        if resp.status_code != 403 or resp.get_json()["code"] != "403.1":
            wrong.append(f"{method} {rule}: {resp.status_code}")
    assert wrong == []
    assert fingerprint(conn) == before


def test_a_collector_is_never_refused_for_its_role_on_the_other_routes(app, client, world, collector_key):
    doc = client.get("/api/v1/openapi.json").get_json()
    refused = [f"{m} {rule}" for m, rule, path in api_routes(app)
               if not admin_only(doc, m, path) and call(client, m, fill(rule, world), collector_key).status_code == 403]
    assert refused == []


def test_every_route_without_a_key_is_401_and_changes_nothing(app, client, conn, world):
    before = fingerprint(conn)
    wrong = [f"{m} {rule}: {status}" for m, rule, _ in api_routes(app)
             if (status := call(client, m, fill(rule, world), None).status_code) != 401]
    assert wrong == []
    assert fingerprint(conn) == before


def test_another_organizations_admin_gets_404_for_every_id_and_changes_nothing(app, client, conn, world,
                                                                                other_org_admin_key):
    before = fingerprint(conn)
    wrong = []
    tried = 0
    for method, rule, _ in api_routes(app):
        if "<" not in rule:
            continue
        tried += 1
        resp = call(client, method, fill(rule, world), other_org_admin_key)
        if resp.status_code != 404 or resp.get_json()["code"] != "404.1":
            wrong.append(f"{method} {rule}: {resp.status_code} {resp.get_json()}")
    assert tried > 15 and wrong == []
    assert fingerprint(conn) == before


def test_the_owner_reaches_every_id_the_matrix_tries(app, client, world, admin_key):
    """The 404s above mean "not yours", not "no such thing": the owning admin finds each one."""
    missing = [f"{m} {rule}" for m, rule, _ in api_routes(app)
               if "<" in rule and m == "GET" and call(client, m, fill(rule, world), admin_key).status_code == 404]
    assert missing == []


@pytest.mark.parametrize("method, url", [
    ("POST", "/api/v1/messages/{message_id}/resend"),
    ("POST", "/api/v1/deliveries/{delivery_id}/retry"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("DELETE", "/api/v1/students/{student_id}"),
])
def test_what_another_organization_could_not_do_its_owner_can(client, conn, world, admin_key, method, url):
    """The same calls by the owner succeed, so the refusals above are about the organization, not the state."""
    resp = client.open(url.format(**world), method=method, headers=auth(admin_key))
    assert resp.status_code in (200, 204), resp.get_json()


def test_a_submission_id_of_another_form_is_404_not_a_leak(client, world, admin_key, make_form):
    other = make_form(slug="second-survey")
    resp = client.get(f"/api/v1/forms/{other['slug']}/responses/{world['submission_id']}", headers=auth(admin_key))
    assert resp.status_code == 404
    assert client.get(f"/api/v1/forms/{world['slug']}/responses/{uuid.uuid4()}", headers=auth(admin_key)).status_code == 404


def student_token(client, admin_key, class_id: int, roll_number: str) -> tuple[str, int]:
    slips = client.post(f"/api/v1/classes/{class_id}/student-signins", json={}, headers=auth(admin_key)).get_json()
    slip = next(s for s in slips["slips"] if s["roll_number"] == roll_number)
    token = client.post("/api/v1/auth/student", json={"class_id": class_id, "roll_number": roll_number,
                                                      "pin": slip["pin"]}).get_json()["token"]
    return token, slip["student_id"]


@pytest.fixture
def exam_world(client, world, admin_key, other_org_admin_key):
    """The world, plus an exam for its class, two signed-in students of it, and one of another organization."""
    h = auth(admin_key)
    client.post(f"/api/v1/classes/{world['class_id']}/students", headers=h,
                json={"students": [{"roll_number": "7", "name": "Ravi"}]})
    exam = client.post("/api/v1/assessments", headers=h, json={
        "title": "Quiz", "type": "Question", "evaluation": "Marks", "outcome": "TSP", "level": "exam",
        "items": [{"key": "q1", "max_marks": 1, "choices": ["a", "b"], "answer_key": "a"}],
        "pass_criterion": {"min_percent": 50}, "class_ids": [world["class_id"]]}).get_json()
    mine, my_id = student_token(client, admin_key, world["class_id"], "1")
    theirs, their_id = student_token(client, admin_key, world["class_id"], "7")
    o = auth(other_org_admin_key)
    client.post("/api/v1/schools", json={"udise": "02010100888", "name": "Other", "district": "Shimla",
                                         "block": "Theog"}, headers=o)
    other_class = client.post("/api/v1/schools/02010100888/classes", json={"grade": 5}, headers=o).get_json()
    client.post(f"/api/v1/classes/{other_class['id']}/students", headers=o,
                json={"students": [{"roll_number": "1", "name": "Other"}]})
    stranger, _ = student_token(client, other_org_admin_key, other_class["id"], "1")
    return {**world, "assessment_id": exam["id"], "student_id": my_id, "token": mine, "classmate": their_id,
            "classmate_token": theirs, "stranger_token": stranger}


def test_a_student_token_gets_403_on_every_key_route_and_changes_nothing(app, client, conn, exam_world):
    before = fingerprint(conn)
    wrong = []
    for method, rule, _ in api_routes(app):
        resp = call(client, method, fill(rule, exam_world), exam_world["token"])
        if resp.status_code != 403 or resp.get_json()["code"] != "403.1":
            wrong.append(f"{method} {rule}: {resp.status_code}")
    assert wrong == []
    assert fingerprint(conn) == before


def test_the_student_routes_take_only_that_students_token(app, client, conn, exam_world, admin_key, collector_key):
    before = fingerprint(conn)
    wrong = []
    for method, rule, _ in api_routes(app, ("student",)):
        url = fill(rule, exam_world)
        for who, key, expected in (("no token", None, {401}), ("admin key", admin_key, {403}),
                                   ("collector key", collector_key, {403}),
                                   ("classmate", exam_world["classmate_token"], {403}),
                                   ("another organization's student", exam_world["stranger_token"], {403, 404})):
            status = call(client, method, url, key).status_code
            if status not in expected:
                wrong.append(f"{method} {rule} with {who}: {status}")
        if method == "GET" and (status := call(client, method, url, exam_world["token"]).status_code) != 200:
            wrong.append(f"{method} {rule} with the student's own token: {status}")
    assert wrong == []
    assert fingerprint(conn) == before

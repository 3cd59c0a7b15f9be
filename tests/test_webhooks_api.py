"""The webhooks and deliveries API and the `fieldpipe deliveries retry` command, as an admin would use them."""

import subprocess
import sys

import pytest

from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due, enqueue
from fieldpipe.webhooks.secret_box import SECRET_KEY_ENV
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import auth


@pytest.fixture(autouse=True)
def loopback_allowed(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


def post_hook(client, key, url, events=("flag.opened",)):
    return client.post("/api/v1/webhooks", json={"url": url, "events": list(events)}, headers=auth(key))


def organization_id(conn, slug="acme"):
    return conn.execute("SELECT id FROM organizations WHERE slug = %s", (slug,)).fetchone()["id"]


def test_register_shows_the_secret_once_and_lists_without_it(client, admin_key, receiver):
    resp = post_hook(client, admin_key, receiver.url(), ["flag.resolved", "flag.opened"])
    assert resp.status_code == 201, resp.get_json()
    created = resp.get_json()
    assert created["secret"].startswith("whsec_") and created["events"] == ["flag.opened", "flag.resolved"]
    assert resp.headers["Location"] == f"/api/v1/webhooks/{created['id']}"
    listed = client.get("/api/v1/webhooks", headers=auth(admin_key)).get_json()["items"]
    assert [h["url"] for h in listed] == [receiver.url()]
    assert "secret" not in listed[0] and created["secret"] not in str(listed)


@pytest.mark.parametrize("body, field, code", [
    ({"url": "not a url", "events": ["flag.opened"]}, "url", "malformed"),
    ({"url": "https://example.org/x", "events": []}, "events", "required"),
    ({"url": "https://example.org/x", "events": ["flag.closed"]}, "events", "unknown_event"),
    ({"events": ["flag.opened"]}, "url", "malformed"),
])
def test_bad_registrations_are_refused_with_the_field(client, admin_key, body, field, code):
    resp = client.post("/api/v1/webhooks", json=body, headers=auth(admin_key))
    assert resp.status_code == 422
    assert {"field": field, "code": code} in [{k: e[k] for k in ("field", "code")} for e in resp.get_json()["errors"]]


def test_webhooks_page_through_in_the_order_registered(client, admin_key, receiver):
    urls = [receiver.url(f"/hook-{n}") for n in range(3)]
    for url in urls:
        assert post_hook(client, admin_key, url).status_code == 201
    first = client.get("/api/v1/webhooks?limit=2", headers=auth(admin_key)).get_json()
    assert [h["url"] for h in first["items"]] == urls[:2] and first["next_cursor"]
    rest = client.get(f"/api/v1/webhooks?limit=2&cursor={first['next_cursor']}", headers=auth(admin_key)).get_json()
    assert [h["url"] for h in rest["items"]] == urls[2:] and rest["next_cursor"] is None

def test_loopback_is_refused_without_the_allow_list(client, admin_key, receiver, monkeypatch):
    monkeypatch.delenv(ALLOW_NETS_ENV)
    for url in (receiver.url(), receiver.url(host="localhost"), "http://169.254.169.254/latest/meta-data/"):
        resp = post_hook(client, admin_key, url)
        assert resp.status_code == 422, url
        assert resp.get_json()["errors"][0]["code"] == "forbidden_address"
    assert client.get("/api/v1/webhooks", headers=auth(admin_key)).get_json()["items"] == []


def test_plain_http_is_refused_in_production(client, admin_key, receiver, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    monkeypatch.setenv(SECRET_KEY_ENV, "test-key")
    resp = post_hook(client, admin_key, receiver.url())
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["code"] == "scheme"


def test_only_admins_of_the_same_organization(client, admin_key, collector_key, other_org_admin_key, receiver):
    assert post_hook(client, collector_key, receiver.url()).status_code == 403
    assert client.get("/api/v1/deliveries", headers=auth(collector_key)).status_code == 403
    hook = post_hook(client, admin_key, receiver.url()).get_json()
    assert client.get("/api/v1/webhooks", headers=auth(other_org_admin_key)).get_json()["items"] == []
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(other_org_admin_key)).status_code == 404
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(admin_key)).status_code == 204
    assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(admin_key)).status_code == 404


def test_removing_a_webhook_cancels_its_queued_deliveries(client, conn, admin_key, receiver):
    hook = post_hook(client, admin_key, receiver.url()).get_json()
    enqueue(conn, [{"organization_id": organization_id(conn), "event": "flag.opened", "event_key": "k1", "data": {}}])
    client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(admin_key))
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    assert receiver.requests == []
    [item] = client.get("/api/v1/deliveries", headers=auth(admin_key)).get_json()["items"]
    assert item["status"] == "cancelled"


@pytest.mark.parametrize("secret_key", [None, "one-key,older-key"])
def test_secrets_at_rest_and_signing(client, conn, admin_key, receiver, monkeypatch, secret_key):
    if secret_key:
        monkeypatch.setenv(SECRET_KEY_ENV, secret_key)
    secret = post_hook(client, admin_key, receiver.url()).get_json()["secret"]
    stored = conn.execute("SELECT secret_sealed FROM webhooks").fetchone()["secret_sealed"]
    assert stored.startswith("fernet:" if secret_key else "plain:")
    assert (secret not in stored) == bool(secret_key)
    enqueue(conn, [{"organization_id": organization_id(conn), "event": "flag.opened", "event_key": "k1", "data": {}}])
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    [request] = receiver.requests
    assert verify_signature(secret, request.headers[SIGNATURE_HEADER], request.body)


def test_production_refuses_to_store_secrets_in_the_clear(client, admin_key, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    resp = post_hook(client, admin_key, "https://example.org/hooks")
    assert resp.status_code == 503 and SECRET_KEY_ENV in resp.get_json()["detail"]


def test_failed_deliveries_are_listed_and_replayed(client, conn, db_url, admin_key, receiver):
    post_hook(client, admin_key, receiver.url())
    enqueue(conn, [{"organization_id": organization_id(conn), "event": "flag.opened", "event_key": f"k{n}", "data": {}}
                   for n in range(3)])
    receiver.answer(400)
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    failed = client.get("/api/v1/deliveries?status=failed", headers=auth(admin_key)).get_json()["items"]
    assert len(failed) == 3 and failed[0]["last_status_code"] == 400
    assert client.get("/api/v1/deliveries?status=delivered", headers=auth(admin_key)).get_json()["items"] == []
    assert client.get("/api/v1/deliveries?status=lost", headers=auth(admin_key)).status_code == 422

    receiver.answer(200)
    one = failed[0]["id"]
    resp = client.post(f"/api/v1/deliveries/{one}/retry", headers=auth(admin_key))
    assert resp.status_code == 200 and resp.get_json()["status"] == "queued"
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    detail = client.get(f"/api/v1/deliveries/{one}", headers=auth(admin_key)).get_json()
    assert detail["status"] == "delivered"
    assert [(a["attempt"], a["status_code"], a["outcome"]) for a in detail["history"]] == [
        (1, 400, "failed"), (2, 200, "delivered")]
    assert client.post(f"/api/v1/deliveries/{one}/retry", headers=auth(admin_key)).status_code == 409
    assert client.post("/api/v1/deliveries/999999/retry", headers=auth(admin_key)).status_code == 404

    out = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "deliveries", "retry", "--all-failed"],
                         capture_output=True, text=True, check=True,
                         env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    assert "requeued 2 failed webhook deliveries" in out.stdout
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    assert client.get("/api/v1/deliveries?status=failed", headers=auth(admin_key)).get_json()["items"] == []
    assert len(receiver.requests) == 3 + 3


@pytest.mark.parametrize("body, error", [
    ([{"url": "https://example.org/x"}], {"field": "", "code": "type", "message": "must be an object with url and events"}),
    ({"url": "https://user:pw@example.org/x", "events": ["flag.opened"]},
     {"field": "url", "code": "malformed",
      "message": "must not carry credentials; the signature authenticates fieldpipe"}),
    ({"url": "https://example.org/a b", "events": ["flag.opened"]},
     {"field": "url", "code": "malformed", "message": "must not contain spaces or control characters"}),
])
def test_a_refused_registration_says_what_is_wrong(client, conn, admin_key, body, error):
    resp = client.post("/api/v1/webhooks", json=body, headers=auth(admin_key))
    assert resp.status_code == 422 and resp.get_json()["errors"] == [error]
    assert conn.execute("SELECT count(*) AS n FROM webhooks").fetchone()["n"] == 0


def test_removing_a_webhook_that_is_not_there_names_it(client, admin_key):
    resp = client.delete("/api/v1/webhooks/987654", headers=auth(admin_key))
    assert resp.status_code == 404 and resp.get_json()["detail"] == "webhook 987654 was not found"


@pytest.mark.parametrize("key_at_delivery, reason", [
    (None, f"the signing secret is encrypted but {SECRET_KEY_ENV} is not set"),
    ("a-key-that-was-never-used", f"the signing secret does not decrypt with {SECRET_KEY_ENV}"),
])
def test_a_secret_that_cannot_be_read_back_fails_the_delivery_and_says_why(
        client, conn, admin_key, receiver, monkeypatch, key_at_delivery, reason):
    monkeypatch.setenv(SECRET_KEY_ENV, "the-key-at-registration")
    post_hook(client, admin_key, receiver.url())
    if key_at_delivery:
        monkeypatch.setenv(SECRET_KEY_ENV, key_at_delivery)
    else:
        monkeypatch.delenv(SECRET_KEY_ENV)
    enqueue(conn, [{"organization_id": organization_id(conn), "event": "flag.opened", "event_key": "k1", "data": {}}])
    deliver_due(conn, DeliveryPolicy(timeout=1.0))
    assert receiver.requests == []  # never sent unsigned
    [item] = client.get("/api/v1/deliveries", headers=auth(admin_key)).get_json()["items"]
    assert (item["status"], item["last_error"]) == ("failed", reason)

"""The per-request plumbing as a client meets it: both ways to send a key, the key cache's time to live (with
a controllable clock), its bound, and how a body is read (content types, the messages of the refusals)."""

from __future__ import annotations

import json

import pytest

from api import context
from tests.helpers import HOUSEHOLD_QUESTIONS, auth, submission

URL = "/api/v1/forms/household-survey/responses"


class Clock:
    """Stands in for the `time` module inside api.context: `monotonic()` is whatever the test set."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(context, "time", fake)
    monkeypatch.setattr(context, "_key_cache", {})
    return fake


def revoke(conn, key: str) -> None:
    conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_hash = encode(sha256(%s::bytea), 'hex')", (key,))


def test_the_key_is_taken_from_bearer_or_x_api_key(client, admin_key, make_form):
    make_form()
    assert client.get("/api/v1/forms", headers={"X-API-Key": admin_key}).status_code == 200
    assert client.get("/api/v1/forms", headers={"x-api-key": admin_key}).status_code == 200
    assert client.get("/api/v1/forms", headers={"Authorization": f"bearer {admin_key}"}).status_code == 200
    assert client.get("/api/v1/forms", headers={"X-API-Key": "fpk_wrong"}).status_code == 401
    assert client.get("/api/v1/forms", headers={"Authorization": "Bearer ", "X-API-Key": ""}).status_code == 401
    # A Bearer key wins over X-API-Key; a non-Bearer Authorization falls back to X-API-Key.
    assert client.get("/api/v1/forms", headers={**auth(admin_key), "X-API-Key": "fpk_wrong"}).status_code == 200
    assert client.get("/api/v1/forms", headers={"Authorization": f"Basic {admin_key}",
                                                "X-API-Key": admin_key}).status_code == 200
    assert client.get("/api/v1/forms", headers={"Authorization": f"Basic {admin_key}"}).status_code == 401


def test_a_revoked_key_works_until_the_cache_entry_expires_then_is_refused(client, conn, admin_key, clock):
    assert client.get("/api/v1/forms", headers=auth(admin_key)).status_code == 200
    revoke(conn, admin_key)
    clock.now += context.KEY_CACHE_SECONDS - 0.001
    assert client.get("/api/v1/forms", headers=auth(admin_key)).status_code == 200  # remembered, no lookup
    clock.now += 0.001                                                              # exactly the time to live
    resp = client.get("/api/v1/forms", headers=auth(admin_key))
    assert resp.status_code == 401 and resp.get_json()["detail"] == "the API key is not valid"


def test_an_unknown_key_is_never_remembered(client, conn, clock):
    from fieldpipe.orgs import create_key

    assert client.get("/api/v1/forms", headers=auth("fpk_unknown")).status_code == 401
    assert context._key_cache == {}
    key = create_key(conn, "acme", "admin", create_org=True)
    assert client.get("/api/v1/forms", headers=auth(key)).status_code == 200
    assert len(context._key_cache) == 1


def test_the_key_cache_stays_within_its_bound(client, conn, clock, monkeypatch):
    from fieldpipe.orgs import create_key

    monkeypatch.setattr(context, "KEY_CACHE_MAX", 3)
    keys = [create_key(conn, "acme", "collector", create_org=True) for _ in range(7)]
    for key in keys:
        assert client.get("/api/v1/forms", headers=auth(key)).status_code == 200
        assert 1 <= len(context._key_cache) <= 3
    assert len(context._key_cache) == 1  # the 7th key found the cache full (3, 6): cleared, then added


def test_a_body_without_a_content_type_is_read_as_json(client, collector_key, make_form):
    make_form()
    body = json.dumps(submission()).encode()
    resp = client.post(URL, data=body, headers=auth(collector_key))
    assert resp.status_code == 201, resp.get_json()
    suffixed = client.post(URL, data=json.dumps(submission()), content_type="application/vnd.fieldpipe+json",
                           headers=auth(collector_key))
    assert suffixed.status_code == 201


def test_refusals_of_a_body_say_what_was_wrong(client, collector_key, admin_key, make_form, conn):
    make_form()
    form = client.post(URL, data="name=Asha", content_type="application/x-www-form-urlencoded",
                       headers=auth(collector_key))
    assert form.status_code == 415
    assert form.get_json()["detail"] == "send application/json, not application/x-www-form-urlencoded"
    text = client.post(URL, data="{}", content_type="text/plain", headers=auth(collector_key))
    assert text.status_code == 415 and text.get_json()["detail"] == "send application/json, not text/plain"
    broken = client.post(URL, data=b'{"a": ', content_type="application/json", headers=auth(collector_key))
    assert broken.status_code == 400
    assert broken.get_json()["detail"].startswith("the body is not valid JSON: Expecting value: line 1 column 7")
    latin1 = client.post("/api/v1/forms", data='{"slug": "caf\xe9"}'.encode("latin-1"), content_type="application/json",
                         headers=auth(admin_key))
    assert latin1.status_code == 400 and latin1.get_json()["code"] == "400.1"
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 0
    assert [q["key"] for q in client.get("/api/v1/forms/household-survey", headers=auth(admin_key)).get_json()[
        "questions"]] == [q["key"] for q in HOUSEHOLD_QUESTIONS]


def test_a_key_revoked_through_the_api_is_refused_at_once_by_this_process(client, conn, admin_key, collector_key,
                                                                          clock):
    assert client.get("/api/v1/forms", headers=auth(collector_key)).status_code == 200  # remembered from now on
    key_id = conn.execute("SELECT id FROM api_keys WHERE key_hash = encode(sha256(%s::bytea), 'hex')",
                          (collector_key,)).fetchone()["id"]
    assert client.post(f"/api/v1/keys/{key_id}/revoke", headers=auth(admin_key)).status_code == 200

    refused = client.get("/api/v1/forms", headers=auth(collector_key))  # no time has passed on the cache's clock
    assert refused.status_code == 401 and refused.get_json()["detail"] == "the API key is not valid"
    assert client.get("/api/v1/forms", headers=auth(admin_key)).status_code == 200


def test_a_student_token_that_is_not_valid_is_refused_on_a_key_route_saying_so(client, make_form):
    make_form()
    resp = client.get("/api/v1/forms", headers={"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.forged"})
    assert resp.status_code == 401
    assert resp.get_json()["detail"] == "the token is not valid or has expired"


def test_a_body_outside_the_json_domain_is_refused_naming_where(client, collector_key, conn, make_form):
    make_form()
    nul = submission(answers={"name": "As\u0000ha"})
    resp = client.post(URL, json=nul, headers=auth(collector_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [("answers.name", "character")]
    deep: object = "leaf"
    for _ in range(40):
        deep = [deep]
    resp = client.post(URL, json={**submission(), "extra": deep}, headers=auth(collector_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("extra" + "[0]" * 32, "depth", "nests objects and arrays more than 32 deep")]
    assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == 0

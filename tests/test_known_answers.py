"""Known answers, fixed by hand outside the code: the webhook signature and the If-None-Match rules of RFC 9110.

A signature test that signs and verifies with the same code passes whatever that code signs; these fix the
documented format (HMAC-SHA256 over `<t>.<body>`, header `t=<unix>,v1=<hex>`) with a secret, timestamp and
body whose expected header was computed independently.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from fieldpipe.webhooks.delivery import DeliveryPolicy, deliver_due, enqueue
from fieldpipe.webhooks.registry import register_webhook
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, sign, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV
from tests.fakes.webhook_receiver import WebhookReceiver
from tests.helpers import auth
from tests.test_assessments_api import UDISE, assessment, school  # noqa: F401 (fixtures)

SECRET = "whsec_known-answer"
TIMESTAMP = 1700000000
BODY = b'{"id":"flag.opened:1:1","type":"flag.opened"}'
# printf '%s' '1700000000.{"id":"flag.opened:1:1","type":"flag.opened"}' | openssl dgst -sha256 -hmac whsec_known-answer
EXPECTED = "t=1700000000,v1=f8fc57c252c0a383193d0169069db7318040d7ab1b20858e8c5909f231f1740d"


def test_signature_matches_the_documented_known_answer():
    assert sign(SECRET, BODY, TIMESTAMP) == EXPECTED
    assert sign(SECRET, BODY.decode(), TIMESTAMP) == EXPECTED
    assert verify_signature(SECRET, EXPECTED, BODY, now=TIMESTAMP)


@pytest.mark.parametrize("header, body, now, why", [
    (EXPECTED, BODY, TIMESTAMP + 300, "at the edge of the tolerance"),
    (EXPECTED, BODY, TIMESTAMP - 300, "a receiver's clock behind, at the edge"),
    ("t=1700000000, v1=0000,v1=" + EXPECTED.split("v1=")[1], BODY, TIMESTAMP, "rotation: any v1 may match"),
])
def test_signatures_a_receiver_must_accept(header, body, now, why):
    assert verify_signature(SECRET, header, body, now=now), why


@pytest.mark.parametrize("secret, header, body, now, why", [
    ("whsec_other", EXPECTED, BODY, TIMESTAMP, "another secret"),
    (SECRET, EXPECTED, BODY + b" ", TIMESTAMP, "a body changed by one byte"),
    (SECRET, EXPECTED, BODY, TIMESTAMP + 301, "replayed after the tolerance"),
    (SECRET, EXPECTED, BODY, TIMESTAMP - 301, "from too far in the future"),
    (SECRET, EXPECTED.replace("t=1700000000", "t=1700000001"), BODY, TIMESTAMP, "a timestamp moved"),
    (SECRET, EXPECTED.upper(), BODY, TIMESTAMP, "names and digest reformatted in capitals"),
    (SECRET, "v1=" + EXPECTED.split("v1=")[1], BODY, TIMESTAMP, "no timestamp"),
    (SECRET, "t=1700000000", BODY, TIMESTAMP, "no signature"),
    (SECRET, "t=1700000000,v1=", BODY, TIMESTAMP, "an empty signature"),
    (SECRET, "t=-1700000000,v1=" + EXPECTED.split("v1=")[1], BODY, TIMESTAMP, "a signed timestamp"),
    (SECRET, "", BODY, TIMESTAMP, "no header"),
    (SECRET, None, BODY, TIMESTAMP, "no header at all"),
    (SECRET, "t=1700000000,v0=" + EXPECTED.split("v1=")[1], BODY, TIMESTAMP, "another scheme's name"),
    (SECRET, "t=1700000000,v1=" + hmac.new(SECRET.encode(), b"1700000000:" + BODY, hashlib.sha256).hexdigest(),
     BODY, TIMESTAMP, "signed over <t>:<body>, not <t>.<body>"),
])
def test_forged_or_reformatted_signatures_are_rejected(secret, header, body, now, why):
    assert not verify_signature(secret, header, body, now=now), why


def test_a_delivered_webhook_carries_the_documented_signature(conn, monkeypatch):
    """What a receiver written from the docs alone computes must equal the header it gets."""
    monkeypatch.setenv(ALLOW_NETS_ENV, "127.0.0.0/8")
    org = conn.execute("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme') RETURNING id").fetchone()["id"]
    with WebhookReceiver() as receiver:
        hook = register_webhook(conn, org, {"url": receiver.url(), "events": ["flag.opened"]})
        enqueue(conn, [{"organization_id": org, "event": "flag.opened", "event_key": "k1", "data": {"n": 1}}])
        assert deliver_due(conn, DeliveryPolicy(timeout=2.0))["delivered"] == 1
        [request] = receiver.requests
    fields = dict(item.split("=", 1) for item in request.headers[SIGNATURE_HEADER].split(","))
    assert set(fields) == {"t", "v1"}
    expected = hmac.new(hook["secret"].encode(), fields["t"].encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert fields["v1"] == expected


# --- If-None-Match (RFC 9110 section 13.1.2): weak comparison, a list of tags, or "*" -----------------------

@pytest.fixture
def listing(client, collector_key, assessment):  # noqa: F811 (a fixture from test_assessments_api)
    url = f"/api/v1/assessments?school={UDISE}"
    first = client.get(url, headers=auth(collector_key))
    assert first.status_code == 200
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2  # a strong entity tag
    return url, etag


@pytest.mark.parametrize("header", [
    "{etag}", "W/{etag}", '"other", {etag}', '"other",W/{etag}', '  {etag}  ', "*", 'W/"other", {etag}, "third"',
])
def test_if_none_match_that_matches_is_304_with_the_etag(client, collector_key, listing, header):
    url, etag = listing
    resp = client.get(url, headers={**auth(collector_key), "If-None-Match": header.format(etag=etag)})
    assert resp.status_code == 304
    assert resp.headers["ETag"] == etag and resp.data == b""


@pytest.mark.parametrize("header", [
    '"other"', 'W/"other"', "{bare}", "{upper}", '"other", W/"another"', "",
])
def test_if_none_match_that_does_not_match_is_200_with_the_body(client, collector_key, listing, header):
    url, etag = listing
    sent = header.format(bare=etag.strip('"'), upper=etag.upper() if etag.upper() != etag else '"X' + etag[1:])
    resp = client.get(url, headers={**auth(collector_key), "If-None-Match": sent})
    assert resp.status_code == 200 and resp.headers["ETag"] == etag
    assert [a["school"] for a in resp.get_json()["items"][0]["classes"]] == [UDISE, UDISE]

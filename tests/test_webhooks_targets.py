"""Which webhook URLs are accepted: shape, https in production, and the resolved address (SSRF)."""

import pytest

from fieldpipe.webhooks.signing import sign, verify_signature
from fieldpipe.webhooks.targets import ALLOW_NETS_ENV, TargetRefused, check_target


def fixed(*addresses):
    """A resolver with a fixed answer, as a DNS server under an attacker's control would give."""
    return lambda host, port: list(addresses)


@pytest.fixture(autouse=True)
def no_allow_list(monkeypatch):
    monkeypatch.delenv(ALLOW_NETS_ENV, raising=False)
    monkeypatch.delenv("FIELDPIPE_ENV", raising=False)


@pytest.mark.parametrize("url", ["", "not a url", "ftp://example.org/x", "https://", "//example.org/x",
                                 "https://user:pw@example.org/x", "https://example.org:99999/x",
                                 "https://exa mple.org/x", 42, None])
def test_malformed_urls_are_refused(url):
    with pytest.raises(TargetRefused) as refused:
        check_target(url, resolver=fixed("93.184.216.34"))
    assert refused.value.code == "malformed"


def test_plain_http_is_refused_in_production_only(monkeypatch):
    assert check_target("http://example.org/x", resolver=fixed("93.184.216.34")).port == 80
    monkeypatch.setenv("FIELDPIPE_ENV", "production")
    with pytest.raises(TargetRefused) as refused:
        check_target("http://example.org/x", resolver=fixed("93.184.216.34"))
    assert refused.value.code == "scheme"
    assert check_target("https://example.org/x?a=1", resolver=fixed("93.184.216.34")).path == "/x?a=1"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.5", "192.168.1.1", "169.254.169.254",
                                     "169.254.1.1", "0.0.0.0", "224.0.0.1", "240.0.0.1", "100.64.0.1", "::1",
                                     "fd00:ec2::254", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1"])
def test_internal_addresses_are_refused_after_resolution(address):
    with pytest.raises(TargetRefused) as refused:
        check_target("https://innocent-name.example/hook", resolver=fixed(address))
    assert refused.value.code == "forbidden_address"
    assert ALLOW_NETS_ENV in refused.value.message


@pytest.mark.parametrize("address", [
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:0a00:0001::1",  # 6to4 wrapping loopback, metadata, private
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo whose client is 127.0.0.1 (stored inverted)
    "::127.0.0.1", "::a9fe:a9fe",  # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b:1::a9fe:a9fe",  # NAT64 (well-known and local-use prefixes)
    "::ffff:169.254.169.254",
])
def test_addresses_embedding_a_refused_ipv4_address_are_refused(address):
    with pytest.raises(TargetRefused) as refused:
        check_target(f"http://[{address}]/hook", resolver=fixed(address))
    assert refused.value.code == "forbidden_address" and "embedding" in refused.value.message


@pytest.mark.parametrize("address", ["2002:5db8:d822::1", "2001:4860:4860::8888"])
def test_addresses_embedding_a_public_ipv4_address_or_none_are_accepted(address):
    assert check_target("https://hooks.example/x", resolver=fixed(address)).address == address


def test_one_internal_address_among_public_ones_is_enough_to_refuse():
    with pytest.raises(TargetRefused):
        check_target("https://mixed.example/hook", resolver=fixed("93.184.216.34", "10.0.0.1"))


def test_localhost_name_is_refused_with_the_real_resolver():
    with pytest.raises(TargetRefused) as refused:
        check_target("http://localhost:9/hook")
    assert refused.value.code == "forbidden_address"


def test_operator_allow_list_admits_named_networks_only(monkeypatch):
    monkeypatch.setenv(ALLOW_NETS_ENV, "10.20.0.0/16, 127.0.0.0/8")
    assert check_target("http://hooks.internal/x", resolver=fixed("10.20.3.4")).address == "10.20.3.4"
    assert check_target("http://127.0.0.1:8080/x").address == "127.0.0.1"
    with pytest.raises(TargetRefused):
        check_target("http://hooks.internal/x", resolver=fixed("10.21.0.1"))
    with pytest.raises(TargetRefused):
        check_target("http://metadata.internal/x", resolver=fixed("169.254.169.254"))


def test_unresolvable_host_is_refused():
    with pytest.raises(TargetRefused) as refused:
        check_target("https://no-such-host.invalid/x")
    assert refused.value.code == "unresolvable"


def test_signature_verifies_and_rejects_tampering_wrong_secret_and_replays():
    body = b'{"type":"flag.opened"}'
    header = sign("whsec_a", body, timestamp=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify_signature("whsec_a", header, body, tolerance=300, now=1_700_000_100)
    assert verify_signature("whsec_a", header, body.decode(), tolerance=300, now=1_700_000_100)
    assert not verify_signature("whsec_a", header, body + b" ", tolerance=300, now=1_700_000_100)
    assert not verify_signature("whsec_b", header, body, tolerance=300, now=1_700_000_100)
    assert not verify_signature("whsec_a", header, body, tolerance=300, now=1_700_000_301)  # replayed later
    assert not verify_signature("whsec_a", header, body, tolerance=300, now=1_699_999_000)  # from the future
    # the timestamp is signed: moving it to look fresh breaks the signature
    forged = header.replace("t=1700000000", "t=1700000290")
    assert not verify_signature("whsec_a", forged, body, tolerance=300, now=1_700_000_300)
    for broken in (None, "", "v1=abc", "t=1700000000", "t=abc,v1=00"):
        assert not verify_signature("whsec_a", broken, body, now=1_700_000_000)
    # a second v1 (sender rotating secrets) is accepted when either matches
    rotated = header + "," + sign("whsec_new", body, 1_700_000_000).split(",")[1]
    assert verify_signature("whsec_new", rotated, body, now=1_700_000_000)


def test_a_host_without_addresses_is_unresolvable():
    with pytest.raises(TargetRefused) as refused:
        check_target("https://empty.example/x", resolver=fixed())
    assert refused.value.code == "unresolvable" and "'empty.example' does not resolve" in refused.value.message


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "a loopback address"), ("10.1.2.3", "a private address"),
    ("169.254.169.254", "a cloud metadata address"), ("169.254.1.1", "a link-local address"),
    ("224.0.0.1", "a multicast address"), ("4000::1", "a reserved address"), ("100.64.0.1", "not a public address"),
    ("2002:a00:1::1", "an IPv6 address embedding a private address (10.0.0.1)"),
])
def test_a_refused_address_is_named_with_the_reason(address, reason):
    with pytest.raises(TargetRefused) as refused:
        check_target("https://innocent-name.example/hook", resolver=fixed(address))
    assert refused.value.message.startswith(f"host 'innocent-name.example' resolves to {address}, {reason};")


def test_an_address_of_exactly_the_maximum_length_is_accepted_and_one_more_character_refused():
    base = "https://hooks.example/"
    longest = base + "x" * (2048 - len(base))
    assert check_target(longest, resolver=fixed("93.184.216.34")).address == "93.184.216.34"
    with pytest.raises(TargetRefused) as refused:
        check_target(longest + "x", resolver=fixed("93.184.216.34"))
    assert (refused.value.code, str(refused.value)) == ("malformed", "must be at most 2048 characters")

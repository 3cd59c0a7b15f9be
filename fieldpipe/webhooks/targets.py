"""Where a webhook may point: a well-formed http(s) URL, HTTPS in production, and a public address.

Server-side request forgery defence: the host is resolved and EVERY address it resolves to must be public
(not loopback, private, link-local, multicast, reserved, unspecified, shared or a cloud metadata address),
unless an operator allow-lists its network in FIELDPIPE_WEBHOOK_ALLOW_NETS (comma-separated CIDRs).
The check runs at registration (422) and again before every delivery, and the delivery connects to the
address that passed, so a name re-pointed at an internal address after the check (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from fieldpipe.config import WEBHOOK_ALLOW_NETS_ENV as ALLOW_NETS_ENV, Settings

MAX_URL_LENGTH = 2048
# Cloud metadata services; most are link-local already, named here so the refusal says why.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200"))

Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not be used; `code` is a stable reason (malformed, scheme, unresolvable, forbidden_address)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to `address`, but speak HTTP (Host, TLS SNI and certificate) to `host`."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(info[4][0] for info in infos))


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    raw = Settings.from_env().webhooks.allow_nets
    return [ipaddress.ip_network(part.strip(), strict=False) for part in raw.replace(";", ",").split(",")
            if part.strip()]


NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, compatible, 6to4, Teredo (server and client), NAT64."""
    embedded = []
    if address.ipv4_mapped:
        embedded.append(address.ipv4_mapped)
    if address.sixtofour:
        embedded.append(address.sixtofour)
    if address.teredo:
        embedded += list(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 0xFFFF:  # IPv4-compatible ::a.b.c.d (deprecated, still routed)
        embedded.append(low32)
    if any(address in prefix for prefix in NAT64_PREFIXES):
        embedded.append(low32)
    return embedded


def refusal_reason(address: IPAddress) -> str | None:
    """Why an address is not a public destination, or None when it is; an IPv6 address that embeds an
    IPv4 address (mapped, compatible, 6to4, Teredo, NAT64) is refused when the embedded one is."""
    if isinstance(address, ipaddress.IPv6Address):
        for inner in embedded_ipv4(address):
            reason = refusal_reason(inner)
            if reason:
                return f"an IPv6 address embedding {reason} ({inner})"
    checks = (
        (address in METADATA_ADDRESSES, "a cloud metadata address"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (address.is_unspecified, "an unspecified address"),
        (not address.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def parse_url(url: object) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of a well-formed webhook URL, or TargetRefused."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused("malformed", "must be an absolute http(s) URL")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused("malformed", f"must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise TargetRefused("malformed", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise TargetRefused("malformed", f"is not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("malformed", "must be an absolute http(s) URL such as https://example.org/hooks")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("malformed", "must not carry credentials; the signature authenticates fieldpipe")
    if Settings.from_env().production and parts.scheme != "https":
        raise TargetRefused("scheme", "must use https in production")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def check_target(url: object, *, resolver: Resolver = system_resolver) -> Target:
    """Parse the URL, resolve its host and check every address; the first address is the one to connect to."""
    scheme, host, port, path = parse_url(url)
    try:
        addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
    except (OSError, UnicodeError, ValueError) as err:
        raise TargetRefused("unresolvable", f"host {host!r} does not resolve: {err}") from None
    if not addresses:
        raise TargetRefused("unresolvable", f"host {host!r} does not resolve")
    allowed = allowed_networks()
    for address in addresses:
        reason = refusal_reason(address)
        if reason and not any(address in net for net in allowed if net.version == address.version):
            raise TargetRefused("forbidden_address",
                                f"host {host!r} resolves to {address}, {reason}; an operator can allow its "
                                f"network in {ALLOW_NETS_ENV}")
    return Target(url=str(url), scheme=scheme, host=host, port=port, path=path, address=str(addresses[0]))

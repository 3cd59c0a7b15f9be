"""Webhook signatures: HMAC-SHA256 over `<unix timestamp>.<body>`, sent as `Fieldpipe-Signature: t=<unix>,v1=<hex>`.

The timestamp is inside the signed text, so a receiver that checks it against its clock (`tolerance`)
rejects a captured request replayed later. Receivers in Python can import `verify_signature`; the format
is small enough to check in any language (docs/webhooks.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

SIGNATURE_HEADER = "Fieldpipe-Signature"
SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes | str, timestamp: int | None = None) -> str:
    """The header value for `body` signed at `timestamp` (now by default)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={_digest(secret, timestamp, _as_bytes(body))}"


def verify_signature(secret: str, header: str | None, body: bytes | str,
                     tolerance: float = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """True when `header` signs exactly `body` with `secret` and its timestamp is within `tolerance` seconds
    of `now` (either way). Any v1 value may match, so a sender can sign with two secrets while rotating."""
    if not header:
        return False
    timestamp, candidates = None, []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = _digest(secret, timestamp, _as_bytes(body))
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)

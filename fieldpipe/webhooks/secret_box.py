"""Signing secrets at rest. fieldpipe must sign with the secret, so it keeps it recoverable, not hashed.

With FIELDPIPE_SECRET_KEY set (any string; comma-separate several to rotate: the first encrypts, all
decrypt) a secret is stored Fernet-encrypted (AES-128-CBC + HMAC-SHA256) as `fernet:<token>`, with the
Fernet key derived as SHA-256 of the configured string. Without it, development stores secrets plainly as
`plain:<secret>` (local databases only); production refuses to register webhooks rather than do that.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from fieldpipe.config import WEBHOOK_SECRET_KEY_ENV as SECRET_KEY_ENV, Settings
from fieldpipe.problems import Problem



class SecretUnavailable(Exception):
    """A stored secret cannot be read back with the configured key(s)."""


def _fernet() -> MultiFernet | None:
    keys = Settings.from_env().webhooks.secret_keys
    if not keys:
        return None
    return MultiFernet([Fernet(base64.urlsafe_b64encode(hashlib.sha256(k.encode()).digest())) for k in keys])


def seal(secret: str) -> str:
    box = _fernet()
    if box is not None:
        return "fernet:" + box.encrypt(secret.encode()).decode()
    if Settings.from_env().production:
        raise Problem("unavailable", f"{SECRET_KEY_ENV} is not set, so webhook secrets cannot be stored safely")
    return "plain:" + secret


def unseal(stored: str) -> str:
    scheme, _, value = stored.partition(":")
    if scheme == "plain":
        return value
    box = _fernet()
    if box is None:
        raise SecretUnavailable(f"the signing secret is encrypted but {SECRET_KEY_ENV} is not set")
    try:
        return box.decrypt(value.encode()).decode()
    except InvalidToken:
        raise SecretUnavailable(f"the signing secret does not decrypt with {SECRET_KEY_ENV}") from None

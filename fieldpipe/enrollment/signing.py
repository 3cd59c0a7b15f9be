"""Each organization's Ed25519 keys for school leaving certificates.

A key is generated the first time the organization signs, and its private half is stored sealed by
`secret_box` (Fernet with FIELDPIPE_SECRET_KEY; production refuses to store it otherwise). Rotating makes a
new key the signing one and retires the old, whose certificates still verify; revoking refuses every
certificate the key signed. Public keys, with their status, are published at /.well-known/fieldpipe-slc-keys.
"""

from __future__ import annotations

import base64
import secrets

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from fieldpipe import audit, paging
from fieldpipe.problems import not_found
from fieldpipe.webhooks.secret_box import seal, unseal


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _status(row: dict) -> str:
    return "revoked" if row["revoked_at"] else "retired" if row["retired_at"] else "active"


def key_body(row: dict) -> dict:
    """The public key as a JWK (RFC 8037), with its organization and status."""
    return {"kid": row["kid"], "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "x": b64url(bytes(row["public_key"])), "organization": row["slug"], "status": _status(row),
            "created_at": row["created_at"], "retired_at": row["retired_at"], "revoked_at": row["revoked_at"]}


_KEYS = """SELECT k.*, o.slug FROM slc_signing_keys k JOIN organizations o ON o.id = k.organization_id"""
KEYS = paging.Keyset("slc-keys", str)  # ORDER BY kid


def published_keys(conn: psycopg.Connection) -> list[dict]:
    return [key_body(r) for r in conn.execute(_KEYS + " ORDER BY o.slug, k.created_at, k.kid")]


def organization_keys(conn: psycopg.Connection, organization_id: int, page: paging.Page) -> dict:
    rows = conn.execute(_KEYS + " WHERE k.organization_id = %s AND k.kid > %s ORDER BY k.kid LIMIT %s",
                        (organization_id, page.after[0] if page.after else "", page.fetch)).fetchall()
    return page.answer(rows, key=lambda r: (r["kid"],), shape=key_body)


def _key(conn: psycopg.Connection, kid: str) -> dict:
    return key_body(conn.execute(_KEYS + " WHERE k.kid = %s", (kid,)).fetchone())


def _create_key(conn: psycopg.Connection, organization_id: int) -> dict:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return conn.execute(
        """INSERT INTO slc_signing_keys (kid, organization_id, public_key, private_key) VALUES (%s, %s, %s, %s)
           RETURNING *""",
        (secrets.token_hex(4), organization_id, public, seal(b64url(raw))),
    ).fetchone()


def _active_key(conn: psycopg.Connection, organization_id: int) -> dict:
    # The lock makes two first certificates of an organization share one new key rather than race for it.
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('slc-key', %s))", (organization_id,))
    row = conn.execute(
        "SELECT * FROM slc_signing_keys WHERE organization_id = %s AND retired_at IS NULL AND revoked_at IS NULL",
        (organization_id,),
    ).fetchone()
    return row or _create_key(conn, organization_id)


def sign(conn: psycopg.Connection, organization_id: int, make_message) -> tuple[str, bytes, bytes]:
    """Sign `make_message(kid)` with the organization's signing key; return (kid, message, signature)."""
    key = _active_key(conn, organization_id)
    message = make_message(key["kid"])
    private = Ed25519PrivateKey.from_private_bytes(b64url_decode(unseal(key["private_key"])))
    return key["kid"], message, private.sign(message)


def check_signature(conn: psycopg.Connection, kid: str, message: bytes, signature: bytes) -> str | None:
    """None when `kid` signed the message and is not revoked; else the reason it is refused."""
    row = conn.execute("SELECT public_key, revoked_at FROM slc_signing_keys WHERE kid = %s", (kid,)).fetchone()
    if row is None:
        return "unknown-key"
    try:
        Ed25519PublicKey.from_public_bytes(bytes(row["public_key"])).verify(signature, message)
    except InvalidSignature:
        return "bad-signature"
    return "key-revoked" if row["revoked_at"] is not None else None


def rotate(conn: psycopg.Connection, organization_id: int, api_key_id: int | None) -> dict:
    """Retire the signing key (its certificates still verify) and make a new one."""
    old = _active_key(conn, organization_id)
    conn.execute("UPDATE slc_signing_keys SET retired_at = now() WHERE kid = %s", (old["kid"],))
    new = _create_key(conn, organization_id)
    audit.record(conn, organization_id, api_key_id, "slc_key.rotated", f"slc_key:{new['kid']}", {"retired": old["kid"]})
    return _key(conn, new["kid"])


def revoke(conn: psycopg.Connection, organization_id: int, api_key_id: int | None, kid: str) -> dict:
    """Refuse every certificate the key signed from now on; the next certificate gets a new key."""
    row = conn.execute(
        """UPDATE slc_signing_keys SET revoked_at = coalesce(revoked_at, now())
            WHERE kid = %s AND organization_id = %s RETURNING kid""",
        (kid, organization_id),
    ).fetchone()
    if row is None:
        raise not_found(f"signing key {kid!r}")
    audit.record(conn, organization_id, api_key_id, "slc_key.revoked", f"slc_key:{kid}")
    return _key(conn, kid)


"""Organizations and their API keys.

A key is `fpk_` + 43 random URL-safe characters. Only its SHA-256 is stored, so a leaked
database does not leak keys; the key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg

KEY_PREFIX = "fpk_"
ROLES = ("admin", "collector")


@dataclass(frozen=True)
class Caller:
    organization_id: int
    organization_slug: str
    role: str
    key_id: int

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def ensure_organization(conn: psycopg.Connection, slug: str, name: str | None = None) -> int:
    row = conn.execute(
        """INSERT INTO organizations (slug, name) VALUES (%s, %s)
           ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
           RETURNING id""",
        (slug, name or slug),
    ).fetchone()
    return row["id"]


def create_key(conn: psycopg.Connection, org_slug: str, role: str, label: str | None = None) -> str:
    """Create the organization if needed, store the key's hash and return the key (its only appearance)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    organization_id = ensure_organization(conn, org_slug)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (organization_id, key_hash, display_prefix, role, label) VALUES (%s, %s, %s, %s, %s)",
        (organization_id, hash_key(key), key[:10], role, label),
    )
    return key


def authenticate(conn: psycopg.Connection, key: str) -> Caller | None:
    row = conn.execute(
        """SELECT k.id, k.role, o.id AS organization_id, o.slug
             FROM api_keys k JOIN organizations o ON o.id = k.organization_id
            WHERE k.key_hash = %s AND k.revoked_at IS NULL""",
        (hash_key(key),),
    ).fetchone()
    if row is None:
        return None
    return Caller(row["organization_id"], row["slug"], row["role"], row["id"])

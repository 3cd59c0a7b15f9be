"""Organizations and their API keys.

A key is `fpk_` + 43 random URL-safe characters. Only its SHA-256 is stored, so a leaked
database does not leak keys; the key is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import psycopg

from fieldpipe import paging
from fieldpipe.problems import not_found

KEY_PREFIX = "fpk_"
# The API remembers a valid key this long, so a revoked key stops working within this many seconds.
KEY_CACHE_SECONDS = 30
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


def organization_id(conn: psycopg.Connection, slug: str) -> int | None:
    row = conn.execute("SELECT id FROM organizations WHERE slug = %s", (slug,)).fetchone()
    return row["id"] if row else None


def create_key(conn: psycopg.Connection, org_slug: str, role: str, label: str | None = None, *,
               create_org: bool = False) -> str:
    """Store a new key's hash and return the key (its only appearance). An unknown organization is refused
    (`LookupError`) unless `create_org`, so a typo in the slug does not quietly start a new, empty organization."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    org = ensure_organization(conn, org_slug) if create_org else organization_id(conn, org_slug)
    if org is None:
        raise LookupError(f"organization {org_slug!r} does not exist")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_keys (organization_id, key_hash, display_prefix, role, label) VALUES (%s, %s, %s, %s, %s)",
        (org, hash_key(key), key[:10], role, label),
    )
    return key


KEYS = paging.Keyset("keys", int)
_KEY_COLUMNS = "k.id, o.slug AS organization, k.role, k.label, k.display_prefix, k.created_at, k.revoked_at"


def key_body(row: dict) -> dict:
    """A key as listed: never the key or its hash, only the prefix that tells keys apart."""
    return {"id": row["id"], "organization": row["organization"], "role": row["role"], "label": row["label"],
            "prefix": row["display_prefix"], "created_at": row["created_at"], "revoked_at": row["revoked_at"]}


def list_keys(conn: psycopg.Connection, organization_id: int | None, page: paging.Page) -> dict:
    """A page of keys (revoked ones too), oldest first; of one organization, or of all when `organization_id`
    is None."""
    rows = conn.execute(
        f"""SELECT {_KEY_COLUMNS} FROM api_keys k JOIN organizations o ON o.id = k.organization_id
             WHERE (%(org)s::bigint IS NULL OR k.organization_id = %(org)s) AND k.id > %(after)s
             ORDER BY k.id LIMIT %(fetch)s""",
        {"org": organization_id, "after": page.after[0] if page.after else 0, "fetch": page.fetch},
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=key_body)


def revoke_key(conn: psycopg.Connection, organization_id: int | None, key_id: int) -> dict:
    """Revoke a key (idempotent: the first revocation time is kept); 404 for another organization's key."""
    row = conn.execute(
        f"""WITH revoked AS (
                UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now())
                 WHERE id = %(id)s AND (%(org)s::bigint IS NULL OR organization_id = %(org)s) RETURNING *)
            SELECT {_KEY_COLUMNS} FROM revoked k JOIN organizations o ON o.id = k.organization_id""",
        {"id": key_id, "org": organization_id},
    ).fetchone()
    if row is None:
        raise not_found(f"key {key_id}")
    return key_body(row)


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

"""The fieldpipe command, run as a user would run it."""

import subprocess
import sys

from tests.helpers import auth


def test_keys_create_prints_the_key_last_and_it_works(db_url, client):
    out = subprocess.run([sys.executable, "-m", "fieldpipe.cli", "keys", "create", "--org", "newcorp", "--role", "admin"],
                         capture_output=True, text=True, check=True, env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("fpk_") and len(key) > 40
    assert client.get("/api/v1/forms", headers=auth(key)).status_code == 200


def test_keys_are_stored_only_as_hashes(db_url, conn):
    from fieldpipe.orgs import create_key, hash_key

    key = create_key(conn, "acme", "collector")
    stored = conn.execute("SELECT key_hash, display_prefix FROM api_keys").fetchone()
    assert stored["key_hash"] == hash_key(key) and key not in stored.values()


def test_demo_load_is_idempotent(conn):
    from fieldpipe.dev.demo import load_demo

    load_demo(conn)
    load_demo(conn)
    slugs = [r["slug"] for r in conn.execute("SELECT slug FROM forms ORDER BY slug")]
    assert "household-survey" in slugs and len(slugs) == len(set(slugs))

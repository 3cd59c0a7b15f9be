"""The fieldpipe command, run as a user would run it."""

import re
import subprocess
import sys
import time

from tests.helpers import auth


def fieldpipe(db_url, *args, check=True):
    return subprocess.run([sys.executable, "-m", "fieldpipe.cli", *args], capture_output=True, text=True, check=check,
                          env={"DATABASE_URL": db_url, "PATH": "/usr/bin:/bin"})


def test_keys_create_prints_the_key_last_and_it_works(db_url, client):
    refused = fieldpipe(db_url, "keys", "create", "--org", "newcorp", "--role", "admin", check=False)
    assert refused.returncode == 1 and "--create-org" in refused.stderr and "fpk_" not in refused.stdout
    out = fieldpipe(db_url, "keys", "create", "--org", "newcorp", "--role", "admin", "--create-org")
    key = out.stdout.strip().splitlines()[-1]
    assert key.startswith("fpk_") and len(key) > 40
    assert client.get("/api/v1/forms", headers=auth(key)).status_code == 200
    # the organization exists now: no flag needed for its next key
    assert fieldpipe(db_url, "keys", "create", "--org", "newcorp", "--role", "collector").returncode == 0


def test_keys_list_and_revoke(db_url, client, conn, monkeypatch):
    import api.context

    monkeypatch.setattr(api.context, "KEY_CACHE_SECONDS", 0.5)
    key = fieldpipe(db_url, "keys", "create", "--org", "acme", "--role", "admin", "--label", "laptop",
                    "--create-org").stdout.strip().splitlines()[-1]
    other = fieldpipe(db_url, "keys", "create", "--org", "rival", "--role", "collector", "--create-org")
    listed = fieldpipe(db_url, "keys", "list", "--org", "acme").stdout
    assert "laptop" in listed and key[:10] in listed and key not in listed and "rival" not in listed
    assert "rival" in fieldpipe(db_url, "keys", "list").stdout
    key_id = conn.execute("SELECT id FROM api_keys WHERE label = 'laptop'").fetchone()["id"]
    assert client.get("/api/v1/forms", headers=auth(key)).status_code == 200  # remembered for the cache time
    revoked = fieldpipe(db_url, "keys", "revoke", str(key_id))
    assert f"revoked key {key_id}" in revoked.stdout and "within 30 s" in revoked.stdout
    time.sleep(0.6)
    assert client.get("/api/v1/forms", headers=auth(key)).status_code == 401
    laptop = next(line for line in fieldpipe(db_url, "keys", "list", "--org", "acme").stdout.splitlines() if "laptop" in line)
    assert re.search(r"\d\d:\d\d:\d\d +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +laptop", laptop), laptop  # created, revoked
    assert fieldpipe(db_url, "keys", "revoke", "999999", check=False).returncode == 1
    assert fieldpipe(db_url, "keys", "list", "--org", "nobody", check=False).returncode == 1
    assert other.returncode == 0


def test_admins_list_and_revoke_keys_of_their_organization_only(client, conn, admin_key, collector_key):
    from fieldpipe.orgs import create_key

    rival = create_key(conn, "rival", "admin", create_org=True)
    listed = client.get("/api/v1/keys", headers=auth(admin_key)).get_json()["items"]
    assert [(k["organization"], k["role"], k["revoked_at"]) for k in listed] == [("acme", "admin", None),
                                                                               ("acme", "collector", None)]
    assert admin_key not in str(listed) and listed[1]["prefix"] == collector_key[:10]
    rival_id = conn.execute("SELECT k.id FROM api_keys k JOIN organizations o ON o.id = k.organization_id "
                            "WHERE o.slug = 'rival'").fetchone()["id"]
    assert client.post(f"/api/v1/keys/{rival_id}/revoke", headers=auth(admin_key)).status_code == 404
    assert client.get("/api/v1/forms", headers=auth(rival)).status_code == 200
    assert client.post(f"/api/v1/keys/{listed[1]['id']}/revoke", headers=auth(collector_key)).status_code == 403
    first = client.post(f"/api/v1/keys/{listed[1]['id']}/revoke", headers=auth(admin_key)).get_json()
    again = client.post(f"/api/v1/keys/{listed[1]['id']}/revoke", headers=auth(admin_key)).get_json()
    assert first["revoked_at"] is not None and again["revoked_at"] == first["revoked_at"]
    assert client.get("/api/v1/forms", headers=auth(collector_key)).status_code == 401


def test_keys_are_stored_only_as_hashes(db_url, conn):
    from fieldpipe.orgs import create_key, hash_key

    key = create_key(conn, "acme", "collector", create_org=True)
    stored = conn.execute("SELECT key_hash, display_prefix FROM api_keys").fetchone()
    assert stored["key_hash"] == hash_key(key) and key not in stored.values()


def test_demo_load_is_idempotent(conn):
    from fieldpipe.dev.demo import load_demo

    load_demo(conn)
    load_demo(conn)
    slugs = [r["slug"] for r in conn.execute("SELECT slug FROM forms ORDER BY slug")]
    assert "household-survey" in slugs and len(slugs) == len(set(slugs))

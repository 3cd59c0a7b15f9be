"""What `make up` keeps between runs and what a user can override (fieldpipe/dev/airflow_runtime.py,
fieldpipe/dev/devserver.py); the processes themselves are checked by hand (docs/airflow.md)."""

from __future__ import annotations

import json
import stat

import pytest

from fieldpipe.dev import airflow_runtime
from fieldpipe.pipelines.names import POOLS
from fieldpipe.dev.devserver import demo_admin_key
from fieldpipe.orgs import authenticate


@pytest.fixture
def var_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FIELDPIPE_VAR_DIR", str(tmp_path))
    return tmp_path


def test_the_airflow_login_is_generated_once_and_readable_only_by_its_owner(var_dir):
    home = airflow_runtime.airflow_home()
    first = airflow_runtime.admin_password(home)

    assert airflow_runtime.admin_password(home) == first
    path = airflow_runtime.passwords_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"admin": first}  # the simple auth manager's file format


def test_a_connection_exported_in_the_shell_wins_over_the_local_default(var_dir, monkeypatch):
    real_sheets = '{"conn_type": "generic", "extra": {"keyfile_dict": {"type": "service_account"}}}'
    monkeypatch.setenv("AIRFLOW_CONN_GOOGLE_SHEETS", real_sheets)
    monkeypatch.delenv("AIRFLOW_CONN_TWILIO_DEFAULT", raising=False)

    env = airflow_runtime.local_env("postgresql://postgres@127.0.0.1:54329/fieldpipe",
                                    "postgresql://postgres@127.0.0.1:54329/airflow")

    assert env["AIRFLOW_CONN_GOOGLE_SHEETS"] == real_sheets
    assert json.loads(env["AIRFLOW_CONN_TWILIO_DEFAULT"])["host"] == "http://127.0.0.1:8098"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == "postgresql+psycopg://postgres@127.0.0.1:54329/airflow"
    assert env["AIRFLOW_HOME"] == str(var_dir / "airflow")


def test_the_demo_admin_key_is_kept_and_replaced_only_when_it_no_longer_works(var_dir, conn, db_url):
    key = demo_admin_key(db_url)

    assert demo_admin_key(db_url) == key
    assert stat.S_IMODE((var_dir / "demo_admin_key").stat().st_mode) == 0o600
    assert authenticate(conn, key).organization_slug == "demo"

    conn.execute("DELETE FROM api_keys")  # e.g. the database was reset but var/demo_admin_key was kept
    replacement = demo_admin_key(db_url)
    assert replacement != key and authenticate(conn, replacement) is not None


def test_init_creates_every_pool_the_dags_use(airflow_db):
    from airflow.models.pool import Pool

    pools = {pool.pool: pool.slots for pool in Pool.get_pools()}
    assert {name: slots for name, (slots, _) in POOLS.items()}.items() <= pools.items()

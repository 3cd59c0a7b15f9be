"""Shared fixtures: one throwaway PostgreSQL per test session (never SQLite, never mocks), migrated once.

Set TEST_DATABASE_URL to a server's maintenance URL (postgresql://user@host:port/postgres) to use an
existing server instead of the embedded one; a database named fieldpipe_test_<pid> is created on it.
With TEST_TEMPLATE_DATABASE also set (mutation/run.py does, for its thousands of short sessions), that
database is copied from the named, already migrated one instead of being migrated afresh (~0.5 s, not ~3 s).

Airflow reads its configuration once, at its first import, and test modules import `airflow.sdk` and
plugins at module level: so the Airflow environment (home, DAGs folder, metadata database
airflow_test_<pid> on the same server, connection `fieldpipe_db` = the test app database) is decided
here, at import time, while the server itself starts lazily in the `pg_server` fixture.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest

from fieldpipe.dev.airflow_runtime import airflow_env, local_aws_connection, postgres_connection, with_database
from fieldpipe.db import connect, migrate
from fieldpipe.dev.embedded_db import EmbeddedPostgres, free_port
from tests.helpers import HOUSEHOLD_QUESTIONS, auth

REPO = Path(__file__).resolve().parent.parent
APP_TABLES_EXCLUDED = {"alembic_version"}

EMBEDDED_PG_PORT = free_port()
MAINTENANCE_URL = os.environ.get("TEST_DATABASE_URL") or f"postgresql://postgres@127.0.0.1:{EMBEDDED_PG_PORT}/postgres"
APP_DATABASE = f"fieldpipe_test_{os.getpid()}"
AIRFLOW_DATABASE = f"airflow_test_{os.getpid()}"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="fieldpipe-airflow-"))
os.environ.update(airflow_env(with_database(MAINTENANCE_URL, APP_DATABASE),
                              with_database(MAINTENANCE_URL, AIRFLOW_DATABASE), AIRFLOW_HOME))
# Forced, not defaulted: a developer's shell may still hold the `make up` value.
os.environ["AIRFLOW_CONN_FIELDPIPE_DB"] = postgres_connection(with_database(MAINTENANCE_URL, APP_DATABASE))


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server():
    """(maintenance URL, server or None): an embedded cluster unless TEST_DATABASE_URL names one."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield MAINTENANCE_URL, None
        return
    data_dir = Path(tempfile.mkdtemp(prefix="fieldpipe-pg-"))
    server = EmbeddedPostgres(data_dir, EMBEDDED_PG_PORT, fast_unsafe=True).start()
    try:
        yield server.url, server
    finally:
        if "airflow.settings" in sys.modules:  # close Airflow's pooled connections before the server goes
            sys.modules["airflow.settings"].dispose_orm()
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def _create_database(maintenance_url: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(maintenance_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return with_database(maintenance_url, name)


@pytest.fixture(scope="session")
def db_url(pg_server):
    template = os.environ.get("TEST_TEMPLATE_DATABASE") if os.environ.get("TEST_DATABASE_URL") else None
    url = _create_database(pg_server[0], APP_DATABASE, template)
    if not template:
        migrate(url)
    os.environ["DATABASE_URL"] = url
    return url


@pytest.fixture(scope="session")
def airflow_db(pg_server):
    """Airflow's metadata database on the test server, created and migrated once per session (~2 s)."""
    from fieldpipe.dev.airflow_runtime import init_metadata

    url = _create_database(pg_server[0], AIRFLOW_DATABASE)
    init_metadata()
    return url


@pytest.fixture
def run_dag(airflow_db, db_url):
    """`run_dag(dag_id, **conf) -> DagRun`: one `dag.test()` run, state asserted (tests/dags/harness.py)."""
    from tests.dags.harness import run_dag as run

    return run


def _truncate_all(url: str) -> None:
    with connect(url, autocommit=True) as conn:
        tables = [r["tablename"] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
            if r["tablename"] not in APP_TABLES_EXCLUDED]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def clean_db(db_url):
    """Every test starts from empty tables."""
    _truncate_all(db_url)
    return db_url


@pytest.fixture
def conn(clean_db):
    with connect(clean_db, autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="session")
def app(db_url):
    from api import create_app

    application = create_app({"DATABASE_URL": db_url, "TESTING": True, "POOL_SIZE": 4})
    yield application
    application.extensions["fieldpipe_pool"].close()


@pytest.fixture
def client(app, clean_db):
    return app.test_client()


def _key(db_url: str, org: str, role: str) -> str:
    from fieldpipe.orgs import create_key

    with connect(db_url) as connection:
        key = create_key(connection, org, role, create_org=True)
        connection.commit()
    return key


@pytest.fixture
def admin_key(clean_db):
    return _key(clean_db, "acme", "admin")


@pytest.fixture
def collector_key(clean_db, admin_key):
    return _key(clean_db, "acme", "collector")


@pytest.fixture
def other_org_admin_key(clean_db):
    return _key(clean_db, "rival", "admin")


@pytest.fixture
def make_form(client, admin_key):
    """Create a form through the API (as a user would) and return its JSON."""

    def create(slug: str = "household-survey", questions: list | None = None, settings: dict | None = None,
               key: str | None = None) -> dict:
        body = {"slug": slug, "title": slug.replace("-", " ").title(),
                "questions": questions or HOUSEHOLD_QUESTIONS, "settings": settings or {}}
        resp = client.post("/api/v1/forms", json=body, headers=auth(key or admin_key))
        assert resp.status_code == 201, resp.get_json()
        return resp.get_json()

    return create


@pytest.fixture(scope="session")
def live_api(app):
    """The API served over real HTTP on a loopback port (for clients that speak HTTP, like Collect)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3-compatible server on a loopback port, for the whole session: a real HTTP server, not a mock."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def object_store(s3_server, monkeypatch):
    """`fieldpipe.objectstore.default_store()` pointed at the session's S3 server, in a bucket of this test's own."""
    from fieldpipe import objectstore

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", local_aws_connection(s3_server))
    monkeypatch.setenv("FIELDPIPE_BUCKET", f"test-{uuid.uuid4().hex[:16]}")
    objectstore.forget_clients()
    yield objectstore.default_store()
    objectstore.forget_clients()

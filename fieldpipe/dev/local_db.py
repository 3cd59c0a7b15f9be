"""Where the application database is: DATABASE_URL, or the embedded server under var/postgres."""

from __future__ import annotations

from fieldpipe.config import Settings, var_dir
from fieldpipe.dev.embedded_db import EmbeddedPostgres

APP_DATABASE = "fieldpipe"
AIRFLOW_DATABASE = "airflow"


def embedded_server() -> EmbeddedPostgres:
    return EmbeddedPostgres(var_dir() / "postgres", Settings.from_env().embedded_pg_port)


def database_url(start: bool = True) -> str:
    """DATABASE_URL when set; otherwise start (if asked) the embedded server and return its app database."""
    configured = Settings.from_env().database_url
    if configured:
        return configured
    server = embedded_server()
    if start:
        server.start()
    return server.ensure_database(APP_DATABASE)

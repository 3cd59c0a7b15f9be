"""How a DAG task reaches domain code: open what it needs through the Airflow connections, call one
domain function with it. Domain functions never read Airflow connections for the database or Sheets
themselves, so tests call them with a plain connection.
"""

from __future__ import annotations

import psycopg

from fieldpipe.db import connect
from fieldpipe.pipelines.names import APP_DB_CONN, GOOGLE_SHEETS_CONN


def app_database_url(conn_id: str = APP_DB_CONN) -> str:
    """The libpq URL of the application database's Airflow connection, for code that opens its own connections.

    A missing connection fails at once with Airflow's error naming `conn_id`, rather than hanging.
    """
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_uri().replace("postgres://", "postgresql://", 1)


def app_database(conn_id: str = APP_DB_CONN) -> psycopg.Connection:
    """The application database through the named Airflow connection."""
    return connect(app_database_url(conn_id))


def google_sheets() -> tuple[str | None, dict] | None:
    """(password, extra) of the Airflow connection `google_sheets`, or None when it is not configured."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(GOOGLE_SHEETS_CONN)
    except AirflowNotFoundException:
        return None
    return connection.password, connection.extra_dejson

"""How a DAG task reaches domain code: open what it needs through the Airflow connections, call one
domain function with it. Domain functions never read Airflow connections for the database or Sheets
themselves, so tests call them with a plain connection.
"""

from __future__ import annotations

import psycopg

from fieldpipe.db import connect
from fieldpipe.pipelines.names import APP_DB_CONN, GOOGLE_SHEETS_CONN


def _database_url(connection) -> str:
    return connection.get_uri().replace("postgres://", "postgresql://", 1)


def app_database_url(conn_id: str = APP_DB_CONN) -> str:
    """The libpq URL of the application database's Airflow connection, for code that opens its own connections.

    A missing connection fails at once with Airflow's error naming `conn_id`, rather than hanging.
    """
    from airflow.sdk import BaseHook

    return _database_url(BaseHook.get_connection(conn_id))


def app_database(conn_id: str = APP_DB_CONN) -> psycopg.Connection:
    """The application database through the named Airflow connection."""
    return connect(app_database_url(conn_id))


async def app_database_async(conn_id: str = APP_DB_CONN) -> psycopg.AsyncConnection:
    """An autocommit asyncio connection to the application database (for triggers in the triggerer's event loop).

    TCP keepalives make a connection whose server vanished without a word fail within about a minute.
    """
    from airflow.sdk import BaseHook

    return await psycopg.AsyncConnection.connect(
        _database_url(await BaseHook.aget_connection(conn_id)), autocommit=True, connect_timeout=10,
        keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3)


def google_sheets() -> tuple[str | None, dict] | None:
    """(password, extra) of the Airflow connection `google_sheets`, or None when it is not configured."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(GOOGLE_SHEETS_CONN)
    except AirflowNotFoundException:
        return None
    return connection.password, connection.extra_dejson

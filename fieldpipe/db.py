"""Connections to the application database and its Alembic migrations.

Domain functions take an open psycopg 3 connection (`conn`) so the API (a pool), the DAGs
(`fieldpipe.pipelines.connections.app_database()`) and the tests share one code path.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg.rows import dict_row

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def connect(url: str, **kwargs) -> psycopg.Connection:
    return psycopg.connect(url, row_factory=dict_row, **kwargs)


def sqlalchemy_url(url: str) -> str:
    """Alembic goes through SQLAlchemy; pin it to the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


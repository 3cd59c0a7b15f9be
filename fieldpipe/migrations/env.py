"""Alembic environment: migrations are plain SQL run through SQLAlchemy's psycopg 3 driver."""

import os

from alembic import context
from sqlalchemy import create_engine, pool

from fieldpipe.db import sqlalchemy_url

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(os.environ["DATABASE_URL"])
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()

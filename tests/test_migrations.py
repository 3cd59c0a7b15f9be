"""The migrations form one line that upgrades, downgrades to nothing and upgrades again."""

from alembic import command
from alembic.script import ScriptDirectory

from fieldpipe.db import alembic_config, connect, migrate
from tests.conftest import _create_database


def test_one_head_and_a_full_round_trip(pg_server):
    url = _create_database(pg_server[0], "fieldpipe_migrations")
    assert len(ScriptDirectory.from_config(alembic_config(url)).get_heads()) == 1
    migrate(url)
    command.downgrade(alembic_config(url), "base")
    with connect(url) as conn:
        left = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert [r["tablename"] for r in left] == ["alembic_version"]
    migrate(url)
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.responses') IS NOT NULL AS ok").fetchone()["ok"]

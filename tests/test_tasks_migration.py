"""Migration 0017 moves what forms configured in settings (`sms_receipt`, `sheet`) into tasks, losing nothing."""

from alembic import command
from psycopg.types.json import Jsonb

from fieldpipe.db import alembic_config, connect
from tests.conftest import _create_database

RECEIPT = {"phone_question": "phone", "template": "Thanks {name}"}
SHEET = {"spreadsheet_id": "sheet-1", "worksheet": "Rows", "cell_limit_share": 0.3}


def test_settings_become_tasks_and_come_back_on_downgrade(pg_server):
    url = _create_database(pg_server[0], "fieldpipe_tasks_migration")
    command.upgrade(alembic_config(url), "0016_pipeline_events")
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (slug, name) VALUES ('acme', 'Acme') RETURNING id").fetchone()["id"]
        for slug, settings in (("both", {"sms_receipt": RECEIPT, "sheet": SHEET, "imports": {"receipts": False}}),
                               ("plain", {}), ("sheet-only", {"sheet": SHEET})):
            conn.execute("INSERT INTO forms (organization_id, slug, title, settings) VALUES (%s, %s, %s, %s)",
                         (org, slug, slug, Jsonb(settings)))
    command.upgrade(alembic_config(url), "head")
    with connect(url) as conn:
        tasks = conn.execute(
            """SELECT f.slug, t.kind, t.mode, t.config, t.events, t.enabled FROM form_tasks t
                 JOIN forms f ON f.id = t.form_id ORDER BY f.slug, t.kind""").fetchall()
        settings = {r["slug"]: r["settings"] for r in conn.execute("SELECT slug, settings FROM forms")}
    assert [tuple(t.values()) for t in tasks] == [
        ("both", "sheet_export", "async", SHEET, ["response.created", "response.updated"], True),
        ("both", "sms_receipt", "async", RECEIPT, ["response.created"], True),
        ("sheet-only", "sheet_export", "async", SHEET, ["response.created", "response.updated"], True)]
    assert settings == {"both": {"imports": {"receipts": False}}, "plain": {}, "sheet-only": {}}
    command.downgrade(alembic_config(url), "0016_pipeline_events")
    with connect(url) as conn:
        settings = {r["slug"]: r["settings"] for r in conn.execute("SELECT slug, settings FROM forms")}
    assert settings == {"both": {"sms_receipt": RECEIPT, "sheet": SHEET, "imports": {"receipts": False}},
                        "plain": {}, "sheet-only": {"sheet": SHEET}}

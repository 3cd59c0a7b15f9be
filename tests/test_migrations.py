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


def test_sms_claims_in_flight_keep_their_lease_across_0015(pg_server):
    """Upgrading from 0014 while a dispatcher holds claims: each claim's `claimed_at` becomes `lease_until`
    (claimed_at + the configured lease); a row no one holds gets no lease; the downgrade restores `claimed_at`."""
    from fieldpipe.config import SmsSettings

    lease_s = SmsSettings.from_env().lease_s
    url = _create_database(pg_server[0], "fieldpipe_migrations_lease")
    command.upgrade(alembic_config(url), "0014_pipeline_failures")
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (slug, name) VALUES ('lease', 'Lease') RETURNING id").fetchone()
        conn.execute(
            """INSERT INTO sms_messages (organization_id, dedupe_key, kind, recipient, body, encoding, segments,
                                         status, attempts, claim_token, claimed_at, handed_at)
               VALUES (%(org)s, 'held', 'receipt', '+919876543210', 'x', 'GSM-7', 1, 'sending', 1,
                       gen_random_uuid(), '2026-11-30 01:00:00+00', NULL),
                      (%(org)s, 'handed', 'receipt', '+919876543211', 'x', 'GSM-7', 1, 'sending', 2,
                       gen_random_uuid(), '2026-11-30 01:05:00+00', '2026-11-30 01:05:01+00'),
                      (%(org)s, 'waiting', 'receipt', '+919876543212', 'x', 'GSM-7', 1, 'queued', 0, NULL, NULL, NULL)""",
            {"org": org["id"]},
        )
    command.upgrade(alembic_config(url), "0015_outbox_lease")
    with connect(url) as conn:
        rows = {r["dedupe_key"]: r for r in conn.execute(
            """SELECT dedupe_key, status, attempts, handed_at IS NOT NULL AS handed,
                      extract(epoch FROM lease_until - '2026-11-30 01:00:00+00')::float8 AS lease_end_s
                 FROM sms_messages""")}
        columns = {r["column_name"] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'sms_messages'")}
    assert rows["held"] == {"dedupe_key": "held", "status": "sending", "attempts": 1, "handed": False,
                            "lease_end_s": lease_s}
    assert rows["handed"]["lease_end_s"] == 300 + lease_s and rows["handed"]["handed"]
    assert rows["waiting"]["lease_end_s"] is None
    assert "claimed_at" not in columns and "lease_until" in columns
    command.downgrade(alembic_config(url), "0014_pipeline_failures")
    with connect(url) as conn:
        claimed = {r["dedupe_key"]: r["claimed_at"] for r in conn.execute(
            "SELECT dedupe_key, to_char(claimed_at AT TIME ZONE 'UTC', 'HH24:MI:SS') AS claimed_at FROM sms_messages")}
    assert claimed == {"held": "01:00:00", "handed": "01:05:00", "waiting": None}


def test_an_abandoned_claim_carried_over_by_0015_is_settled_once_its_lease_passed(pg_server, tmp_path):
    """A claim made before the upgrade by a dispatcher that then stopped is settled by the new code
    (never handed to the provider: back to queued, the attempt not counted), and only once its lease passed."""
    from fieldpipe.sms.outbox import settle_abandoned
    from fieldpipe.sms.providers import FileProvider

    url = _create_database(pg_server[0], "fieldpipe_migrations_settle")
    command.upgrade(alembic_config(url), "0014_pipeline_failures")
    with connect(url) as conn:
        org = conn.execute("INSERT INTO organizations (slug, name) VALUES ('lease', 'Lease') RETURNING id").fetchone()
        conn.execute(
            """INSERT INTO sms_messages (organization_id, dedupe_key, kind, recipient, body, encoding, segments,
                                         status, attempts, claim_token, claimed_at)
               VALUES (%(org)s, 'stale', 'receipt', '+919876543210', 'x', 'GSM-7', 1, 'sending', 1,
                       gen_random_uuid(), now() - interval '2 days'),
                      (%(org)s, 'fresh', 'receipt', '+919876543211', 'x', 'GSM-7', 1, 'sending', 1,
                       gen_random_uuid(), now())""",
            {"org": org["id"]},
        )
    migrate(url)
    with connect(url) as conn:
        settled = settle_abandoned(conn, FileProvider(tmp_path / "sent.jsonl"))
        rows = {r["dedupe_key"]: (r["status"], r["attempts"], r["lease_until"] is None)
                for r in conn.execute("SELECT dedupe_key, status, attempts, lease_until FROM sms_messages")}
    assert settled == {"sent": 0, "queued": 1, "unknown": 0}
    assert rows == {"stale": ("queued", 0, True), "fresh": ("sending", 1, False)}


def test_the_scale_indexes_convert_a_database_holding_responses(pg_server):
    from fieldpipe import forms, responses
    from fieldpipe.orgs import ensure_organization
    from tests.helpers import HOUSEHOLD_QUESTIONS, submission

    url = _create_database(pg_server[0], "fieldpipe_scale_upgrade")
    command.upgrade(alembic_config(url), "0019_announcements")
    with connect(url) as conn:
        org = ensure_organization(conn, "acme", "Acme")
        for slug in ("survey", "census"):
            forms.create_form(conn, org, {"slug": slug, "title": slug, "questions": HOUSEHOLD_QUESTIONS})
        form, big = forms.get_form_row(conn, org, "survey"), forms.get_form_row(conn, org, "census")
        stored = []
        for _ in range(4):
            stored += responses.ingest(conn, form, [submission() for _ in range(250)])
            stored += responses.ingest(conn, big, [submission() for _ in range(250)])
        # as in the field: most of a form's responses are old, the day's new ones few
        conn.execute("UPDATE responses SET updated_at = now() - interval '30 days' WHERE id % 100 <> 0")
        conn.commit()

    migrate(url)

    with connect(url) as conn:
        index = conn.execute("""SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i
                                  JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = 'responses_form_updated'""").fetchone()
        assert index["indisvalid"] and index["definition"].endswith("(form_id, updated_at)")
        assert conn.execute("SELECT count(*) AS n FROM responses").fetchone()["n"] == len(stored) == 2000
        conn.execute("ANALYZE responses")
        plan = conn.execute("EXPLAIN SELECT id FROM responses WHERE form_id = %s AND updated_at > now() - interval '1 day'",
                            (form["id"],)).fetchall()
        assert "responses_form_updated" in " ".join(row["QUERY PLAN"] for row in plan)
    command.downgrade(alembic_config(url), "0019_announcements")
    with connect(url) as conn:
        assert conn.execute("SELECT to_regclass('responses_form_updated') AS i").fetchone()["i"] is None

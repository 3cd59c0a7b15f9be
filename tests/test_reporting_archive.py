"""Daily Parquet partitions in moto's S3: typed and masked, byte-identical on rerun, one bad form alone failing."""

from __future__ import annotations

import datetime as dt
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fieldpipe.operations.backlog import platform_backlogs
from fieldpipe.reporting import archive
from fieldpipe.reporting.archive import archive_day, partition_key
from tests.helpers import auth, submission
from tests.test_reporting_views import ANSWERS, QUESTIONS

DAY = dt.date(2026, 11, 20)


@pytest.fixture
def survey(client, admin_key):
    body = {"slug": "water-survey", "title": "Water", "questions": QUESTIONS}
    assert client.post("/api/v1/forms", json=body, headers=auth(admin_key)).status_code == 201


def _post(client, key, received: dt.datetime, conn, slug="water-survey", **answers) -> dict:
    sub = submission(answers={**ANSWERS, **answers})
    assert client.post(f"/api/v1/forms/{slug}/responses", json=sub, headers=auth(key)).status_code == 201
    conn.execute("UPDATE responses SET received_at = %s, updated_at = %s WHERE submission_id = %s",
                 (received, received, sub["submission_id"]))
    return sub


def _at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), dt.timezone.utc)


def _table(store, key) -> pa.Table:
    return pq.read_table(io.BytesIO(store.get(key)))


def test_a_day_becomes_one_typed_masked_partition_per_form(client, admin_key, conn, clean_db, object_store, survey):
    first = _post(client, admin_key, _at(DAY, 9), conn)
    second = _post(client, admin_key, _at(DAY, 23), conn, income=7, problems=["dirty"])
    _post(client, admin_key, _at(DAY + dt.timedelta(days=1), 0), conn)  # the next day's

    report = archive_day(clean_db, object_store, DAY)

    key = partition_key("acme", "water-survey", DAY)
    assert key == "acme/water-survey/dt=2026-11-20/part.parquet"
    assert report.written == [key] and report.rows == 2 and not report.failed
    table = _table(object_store, key)
    assert table.column("submission_id").to_pylist() == [first["submission_id"], second["submission_id"]]
    assert table.schema.field("income").type == pa.int64() and table.column("income").to_pylist() == [20000, 7]
    assert table.schema.field("share").type == pa.float64()
    assert table.schema.field("visited").type == pa.date32()
    assert table.schema.field("submitted_at").type == pa.timestamp("us", tz="UTC")
    assert table.column("problems").to_pylist() == [["leak", "dirty"], ["dirty"]]
    assert table.column("phone").to_pylist() == ["+91******3210"] * 2
    assert table.column("note").to_pylist() == [None, None]
    assert "Asha" not in str(table.column("name").to_pylist())
    raw = object_store.get(key)
    for value in ("+919876543210", "asha@example.org", "Asha Devi", "temple", "+919812345678"):
        assert value.encode() not in raw


def test_a_rerun_rewrites_the_partition_byte_identical_and_an_edit_changes_it(client, admin_key, conn, clean_db, object_store, survey):
    sub = _post(client, admin_key, _at(DAY, 9), conn)
    archive_day(clean_db, object_store, DAY)
    key = partition_key("acme", "water-survey", DAY)
    before = object_store.get(key)

    archive_day(clean_db, object_store, DAY)
    assert object_store.get(key) == before

    edited = {**sub, "answers": {**ANSWERS, "income": 1}}
    assert client.patch(f"/api/v1/forms/water-survey/responses/{sub['submission_id']}", json=edited,
                      headers=auth(admin_key)).status_code == 200
    edit_day = conn.execute("SELECT (updated_at AT TIME ZONE 'UTC')::date AS d FROM responses").fetchone()["d"]
    report = archive_day(clean_db, object_store, edit_day)  # the edit's day rewrites the partition it belongs to
    assert key in report.written
    assert _table(object_store, key).column("income").to_pylist() == [1]


def test_slices_read_in_parallel_give_the_same_file_in_received_order(client, admin_key, conn, clean_db, object_store,
                                                                       survey, monkeypatch):
    subs = [_post(client, admin_key, _at(DAY, hour), conn, income=hour) for hour in (23, 0, 12, 12, 5)]
    key = partition_key("acme", "water-survey", DAY)
    monkeypatch.setattr(archive, "SLICE_ROWS", 2)  # three slices of eight hours
    archive_day(clean_db, object_store, DAY, workers=1)
    one_at_a_time = object_store.get(key)
    archive_day(clean_db, object_store, DAY, workers=3)
    assert object_store.get(key) == one_at_a_time
    # received order; the two at 12:00 in the order they were stored
    assert _table(object_store, key).column("submission_id").to_pylist() == [
        subs[i]["submission_id"] for i in (1, 4, 2, 3, 0)]


def test_partitions_of_two_form_versions_read_as_one_table(client, admin_key, conn, clean_db, object_store, survey):
    _post(client, admin_key, _at(DAY, 9), conn)
    archive_day(clean_db, object_store, DAY)
    questions = QUESTIONS + [{"key": "district", "label": "District", "type": "text"}]
    assert client.patch("/api/v1/forms/water-survey", json={"questions": questions},
                      headers=auth(admin_key)).status_code == 200
    later = DAY + dt.timedelta(days=1)
    _post(client, admin_key, _at(later, 9), conn, district="Pune")
    archive_day(clean_db, object_store, later)

    old, new = (_table(object_store, partition_key("acme", "water-survey", d)) for d in (DAY, later))
    assert "district" not in old.column_names and new.column_names[-1] == "district"
    combined = pa.concat_tables([old, new], promote_options="default")  # unify by column name
    assert combined.column("district").to_pylist() == [None, "Pune"]
    assert combined.column("form_version").to_pylist() == [1, 2]


def test_a_form_that_cannot_be_archived_fails_alone_and_is_named(client, admin_key, conn, clean_db, object_store, survey):
    other = {"slug": "other", "title": "Other", "questions": QUESTIONS}
    assert client.post("/api/v1/forms", json=other, headers=auth(admin_key)).status_code == 201
    bad = _post(client, admin_key, _at(DAY, 9), conn)
    _post(client, admin_key, _at(DAY, 10), conn, slug="other")
    # A row that slipped in before input was bounded: an integer too large for any exact column type.
    conn.execute("UPDATE responses SET answers = jsonb_set(answers, '{income}', ('1' || repeat('0', 400))::jsonb) "
                 "WHERE submission_id = %s", (bad["submission_id"],))

    report = archive_day(clean_db, object_store, DAY)

    assert list(report.failed) == ["acme/water-survey"]
    assert report.written == [partition_key("acme", "other", DAY)]
    assert "0000000000" not in report.summary()


def test_the_dag_archives_the_interval_day(client, admin_key, conn, clean_db, object_store, survey, run_dag):
    _post(client, admin_key, _at(DAY, 9), conn)
    run_dag("archive_responses", logical_date=_at(DAY + dt.timedelta(days=1), 0))
    assert object_store.head(partition_key("acme", "water-survey", DAY)) is not None


def test_the_demo_has_responses_from_yesterday_for_the_first_archive_run(conn, clean_db, object_store):
    from fieldpipe.dev.demo import YESTERDAYS_ANSWERS, load_demo

    load_demo(conn)
    load_demo(conn)  # idempotent: no second set
    yesterday = conn.execute("SELECT (now() AT TIME ZONE 'UTC')::date - 1 AS d").fetchone()["d"]
    report = archive_day(clean_db, object_store, yesterday)
    assert report.written == [partition_key("demo", "household-survey", yesterday)]
    assert report.rows == len(YESTERDAYS_ANSWERS)
    # received yesterday, but waiting for validation only since now: no backlog alarm on a fresh `make up`
    waiting = {b["backlog"]: b["oldest_age_s"] for b in platform_backlogs(conn)}
    assert waiting["unvalidated"] < 600

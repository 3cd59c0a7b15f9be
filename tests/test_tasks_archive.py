"""The `archive` task kind (issue 16): a form's daily Parquet archive as a configurable task. Without one a form
is archived whole; a disabled one stops it; `exclude` leaves questions out; a bad configuration is a 422."""

import datetime as dt

from fieldpipe.reporting.archive import archive_day, partition_key
from tests.helpers import auth
from tests.test_reporting_archive import DAY, _at, _post, _table, survey  # noqa: F401 (fixture)
from tests.test_reporting_views import QUESTIONS

TASKS = "/api/v1/forms/water-survey/tasks"


def add(client, key, config, slug="water-survey"):
    return client.post(f"/api/v1/forms/{slug}/tasks", json={"kind": "archive", "config": config}, headers=auth(key))


def test_an_archive_task_leaves_questions_out_and_a_disabled_one_stops_the_forms_archive(
        client, admin_key, conn, clean_db, object_store, survey):
    assert client.post("/api/v1/forms", json={"slug": "plain", "title": "Plain", "questions": QUESTIONS},
                       headers=auth(admin_key)).status_code == 201
    resp = add(client, admin_key, {"exclude": ["income", "visited"]})
    assert resp.status_code == 201, resp.get_json()
    task = resp.get_json()
    assert (task["kind"], task["mode"], task["events"]) == ("archive", "async", [])
    _post(client, admin_key, _at(DAY, 9), conn)
    _post(client, admin_key, _at(DAY, 10), conn, slug="plain")
    assert conn.execute("SELECT count(*) AS n FROM task_runs").fetchone()["n"] == 0  # not a task per response

    report = archive_day(clean_db, object_store, DAY)
    assert sorted(report.written) == [partition_key("acme", "plain", DAY), partition_key("acme", "water-survey", DAY)]
    columns = _table(object_store, partition_key("acme", "water-survey", DAY)).column_names
    assert "income" not in columns and "visited" not in columns and {"share", "phone", "submission_id"} <= set(columns)
    # a form without an archive task is archived whole, as before tasks
    assert {"income", "visited"} <= set(_table(object_store, partition_key("acme", "plain", DAY)).column_names)

    assert client.patch(f"{TASKS}/{task['id']}", json={"enabled": False}, headers=auth(admin_key)).status_code == 200
    next_day = DAY + dt.timedelta(days=1)
    _post(client, admin_key, _at(next_day, 9), conn)
    _post(client, admin_key, _at(next_day, 9), conn, slug="plain")
    assert archive_day(clean_db, object_store, next_day).written == [partition_key("acme", "plain", next_day)]
    # nothing to replay: the pipeline archives whole days
    resp = client.post(f"{TASKS}/{task['id']}/replay", json={"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
                       headers=auth(admin_key))
    assert resp.status_code == 422 and resp.get_json()["errors"][0]["code"] == "no_response_events"


def test_a_bad_archive_configuration_is_422_with_every_problem(client, admin_key, survey):
    resp = add(client, admin_key, {"exclude": "income", "keep": True})
    assert resp.status_code == 422 and resp.headers["Content-Type"] == "application/problem+json"
    assert sorted((e["field"], e["code"]) for e in resp.get_json()["errors"]) == [
        ("config", "additionalProperties"), ("config.exclude", "type")]
    resp = add(client, admin_key, {"exclude": ["income", "age", "", "salary"]})
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [("config.exclude[2]", "minLength")]
    resp = add(client, admin_key, {"exclude": ["income", "age", "salary"]})
    assert [(e["field"], e["code"]) for e in resp.get_json()["errors"]] == [
        ("config.exclude[1]", "unknown_question"), ("config.exclude[2]", "unknown_question")]
    assert client.get(TASKS, headers=auth(admin_key)).get_json()["items"] == []
    assert add(client, admin_key, {}).status_code == 201
    assert [(e["field"], e["code"]) for e in add(client, admin_key, {}).get_json()["errors"]] == [("kind", "one_per_form")]

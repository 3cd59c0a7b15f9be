"""Rules through the API, as a data team uses them: saved per organization's form, versioned, refused with every
problem listed, dry-run before going live, and the next validation run flagging exactly what the dry run said."""

import time

from fieldpipe.rules.validate import pending_work, validate_slug
from tests.helpers import HOUSEHOLD_QUESTIONS, auth, put_rules, submission

SAVINGS = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
    notify: collector
"""
NO_DIGITS = """
rules:
  - id: name-without-digits
    expression: name matches "^[^0-9]+$"
    message: "Name {name} has digits"
    severity: warning
"""
RULES_URL = "/api/v1/forms/household-survey/rules"


def post(client, key, slug="household-survey", submitted_at=None, **answers):
    body = submission(**({"submitted_at": submitted_at} if submitted_at else {}))
    body["answers"].update({k: v for k, v in answers.items() if v is not None})
    for key_ in [k for k, v in answers.items() if v is None]:
        del body["answers"][key_]
    resp = client.post(f"/api/v1/forms/{slug}/responses", json=body, headers=auth(key))
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def flags(client, key, status="open"):
    return client.get(f"/api/v1/forms/household-survey/flags?status={status}", headers=auth(key)).get_json()["items"]


def test_each_change_is_a_version_with_who_and_when_and_the_same_document_changes_nothing(client, admin_key, make_form):
    make_form()
    empty = client.get(RULES_URL, headers=auth(admin_key)).get_json()
    assert empty == {"version": None, "created_at": None, "created_by": None, "rules": [], "expectations": []}

    first = put_rules(client, admin_key, "household-survey", SAVINGS, expect=201)
    assert first.headers["Location"] == f"{RULES_URL}/versions/1"
    body = first.get_json()
    assert body["version"] == 1 and body["created_by"].startswith("api key fpk_") and "(admin" in body["created_by"]
    assert body["rules"][0]["id"] == "savings-within-income" and body["expectations"] == []
    assert list(body["rules"][0]) == ["id", "expression", "message", "notify"]  # as written, not jsonb's order
    # GET -> PUT round trip: the read-only fields are ignored, nothing new is stored
    again = client.put(RULES_URL, json=client.get(RULES_URL, headers=auth(admin_key)).get_json(), headers=auth(admin_key))
    assert again.status_code == 200 and again.get_json()["version"] == 1

    assert put_rules(client, admin_key, "household-survey", NO_DIGITS, expect=201).get_json()["version"] == 2
    assert client.get(RULES_URL, headers=auth(admin_key)).get_json()["rules"][0]["id"] == "name-without-digits"
    page = client.get(f"{RULES_URL}/versions?limit=1", headers=auth(admin_key)).get_json()
    assert [(v["version"], v["rules"], v["in_force"]) for v in page["items"]] == [(2, 1, True)]
    rest = client.get(f"{RULES_URL}/versions?limit=1&cursor={page['next_cursor']}", headers=auth(admin_key)).get_json()
    assert [(v["version"], v["in_force"]) for v in rest["items"]] == [(1, False)] and rest["next_cursor"] is None
    old = client.get(f"{RULES_URL}/versions/1", headers=auth(admin_key)).get_json()
    assert old["rules"][0]["id"] == "savings-within-income"
    assert client.get(f"{RULES_URL}/versions/3", headers=auth(admin_key)).status_code == 404
    for bad in ("limit=0", "limit=abc", "cursor=nonsense"):
        resp = client.get(f"{RULES_URL}/versions?{bad}", headers=auth(admin_key))
        assert resp.status_code == 422 and resp.get_json()["errors"][0]["field"] == bad.split("=")[0]


def test_bad_rules_get_422_listing_every_problem_with_its_rule_id_and_nothing_changes(client, admin_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS)
    document = {"rules": [
        {"id": "typo", "expression": "monthly_savngs > 0", "message": "x"},
        {"id": "types", "expression": "monthly_savings <= name", "message": "x"},
        {"id": "regex", "expression": 'name matches "(?<=a)b"', "message": "x"},
        {"id": "syntax", "expression": 'city in ["pune"', "message": "x"},
        {"id": "choice", "expression": 'city = "puna"', "message": "x"},
        {"id": "fine", "expression": "monthly_income > 0", "message": "{monthly_incme}"},
    ], "expectations": [
        {"id": "gx-regex", "expectation": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "("},
         "message": "x"},
        {"id": "mad", "expectation": "expect_column_values_within_median_deviations",
         "kwargs": {"column": "name", "k": -1}, "message": "x"},
    ]}
    resp = client.put(RULES_URL, json=document, headers=auth(admin_key))
    assert resp.status_code == 422 and resp.mimetype == "application/problem+json"
    errors = resp.get_json()["errors"]
    by_rule: dict = {}
    for error in errors:
        by_rule.setdefault(error["rule_id"], []).append(error)
    assert set(by_rule) == {"typo", "types", "regex", "syntax", "choice", "fine", "gx-regex", "mad"}
    assert "unknown answer key 'monthly_savngs'" in by_rule["typo"][0]["message"]
    assert "compares number answer 'monthly_savings' with text answer 'name'" in by_rule["types"][0]["message"]
    assert by_rule["typo"][0]["field"] == "rules[0]" and by_rule["mad"][0]["field"] == "expectations[1]"
    assert len(by_rule["mad"]) == 2  # a number column and a positive k: both reported
    # nothing changed: still version 1, no new version listed
    assert client.get(RULES_URL, headers=auth(admin_key)).get_json()["version"] == 1
    assert len(client.get(f"{RULES_URL}/versions", headers=auth(admin_key)).get_json()["items"]) == 1
    for body in ([], {"rules": "x"}, {"rules": [], "extra": 1}, {"form": "water-point-audit", "rules": []}):
        resp = client.put(RULES_URL, json=body, headers=auth(admin_key))
        assert resp.status_code == 422, body
    assert client.put(RULES_URL, data="rules: []", headers={**auth(admin_key), "Content-Type": "text/yaml"}).status_code == 415


def test_only_admins_of_the_forms_organization_reach_its_rules(client, admin_key, collector_key, other_org_admin_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS)
    assert client.get(RULES_URL, headers=auth(collector_key)).status_code == 403
    assert client.put(RULES_URL, json={"rules": []}, headers=auth(collector_key)).status_code == 403
    assert client.post(f"{RULES_URL}/dry-run", json={"rules": []}, headers=auth(collector_key)).status_code == 403
    assert client.get(RULES_URL, headers=auth(other_org_admin_key)).status_code == 404
    assert client.get(f"{RULES_URL}/versions", headers=auth(other_org_admin_key)).status_code == 404


def test_two_organizations_with_the_same_form_slug_keep_their_own_rules_and_get_only_their_own_flags(
        client, conn, admin_key, collector_key, other_org_admin_key, make_form):
    from fieldpipe.orgs import create_key

    make_form()
    make_form(key=other_org_admin_key)
    rival_collector = create_key(conn, "rival", "collector")
    put_rules(client, admin_key, "household-survey", SAVINGS)
    put_rules(client, other_org_admin_key, "household-survey", NO_DIGITS)
    assert client.get(RULES_URL, headers=auth(other_org_admin_key)).get_json()["rules"][0]["id"] == "name-without-digits"

    # each response breaks both organizations' rules; each organization flags only by its own
    acme = post(client, collector_key, name="R2D2", monthly_savings=30000)
    rival = post(client, rival_collector, name="R2D2", monthly_savings=30000)
    assert [w["rule_id"] for w in acme["warnings"]] == ["savings-within-income"]
    assert [w["rule_id"] for w in rival["warnings"]] == ["name-without-digits"]
    validate_slug(conn, "household-survey")

    assert [(f["submission_id"], f["rule_id"]) for f in flags(client, admin_key)] == [
        (acme["submission_id"], "savings-within-income")]
    assert [(f["submission_id"], f["rule_id"]) for f in flags(client, other_org_admin_key)] == [
        (rival["submission_id"], "name-without-digits")]


def test_warnings_at_submission_follow_a_new_version_at_once(client, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS)
    assert post(client, collector_key, monthly_savings=30000)["warnings"][0]["message"] == "Savings 30000 exceed income 20000"
    put_rules(client, admin_key, "household-survey", SAVINGS.replace("Savings {", "Saved {"))
    assert post(client, collector_key, monthly_savings=30000)["warnings"][0]["message"] == "Saved 30000 exceed income 20000"
    put_rules(client, admin_key, "household-survey", "rules: []")
    assert post(client, collector_key, monthly_savings=30000)["warnings"] == []


def test_a_rule_changed_through_the_api_flags_the_next_days_responses_as_its_dry_run_predicted(
        client, conn, admin_key, collector_key, make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS)
    day_one = [post(client, collector_key, monthly_savings=s, monthly_income=i)
               for s, i in ((30000, 20000), (19000, 20000), (15000, 20000), (1000, 20000), (5000, None))]
    validate_slug(conn, "household-survey")
    assert len(flags(client, admin_key)) == 1

    # the agency tightens the rule: savings at most 80% of income; try it first
    proposal = {"rules": [{"id": "savings-rate", "expression": "monthly_savings <= monthly_income * 0.8",
                           "message": "Savings {monthly_savings} over 80% of income {monthly_income}", "notify": "collector"}]}
    resp = client.post(f"{RULES_URL}/dry-run", json=proposal, headers=auth(admin_key))
    assert resp.status_code == 200, resp.get_json()
    [predicted] = resp.get_json()["rules"]
    assert resp.get_json()["responses_evaluated"] == 5
    assert (predicted["id"], predicted["would_flag"]) == ("savings-rate", 2)
    assert set(predicted["examples"]) == {day_one[0]["submission_id"], day_one[1]["submission_id"]}
    assert conn.execute("SELECT count(*) AS n FROM flags").fetchone()["n"] == 1  # the dry run wrote nothing
    latest = client.post(f"{RULES_URL}/dry-run?latest=2", json=proposal, headers=auth(admin_key)).get_json()
    assert (latest["responses_evaluated"], latest["rules"][0]["would_flag"]) == (2, 0)

    refused = put_rules(client, admin_key, "household-survey", "x: 1", expect=422)
    assert refused.get_json()["errors"][0]["rule_id"] is None  # a problem of the document, not of a rule
    assert client.put(RULES_URL, json=proposal, headers=auth(admin_key)).get_json()["version"] == 2
    # the next day: new responses, then the scheduled run; no deploy in between
    next_day = [post(client, collector_key, monthly_savings=17000, submitted_at="2026-11-21T09:00:00+05:30"),
                post(client, collector_key, monthly_savings=100, submitted_at="2026-11-21T09:05:00+05:30")]
    assert pending_work(conn) == [{"key": "household-survey", "name": "household-survey", "rows": 7, "gx": False}]  # all 7: the rules changed
    [run] = validate_slug(conn, "household-survey")
    assert run.revalidated_all and run.closed == {"rule_removed": 1}

    opened = flags(client, admin_key)
    assert sorted(f["submission_id"] for f in opened) == sorted(
        [*predicted["examples"], next_day[0]["submission_id"]])
    assert {(f["rule_id"], f["rules_version"]) for f in opened} == {("savings-rate", 2)}
    stored_flagged = [f for f in opened if f["submission_id"] in {r["submission_id"] for r in day_one}]
    assert len(stored_flagged) == predicted["would_flag"]
    [closed] = flags(client, admin_key, status="closed")
    assert (closed["rule_id"], closed["close_reason"], closed["rules_version"]) == ("savings-within-income", "rule_removed", 1)


def test_a_dry_run_over_many_responses_is_a_job_to_poll(client, conn, admin_key, collector_key, make_form, monkeypatch):
    make_form()
    bad = [post(client, collector_key, monthly_savings=30000) for _ in range(2)]
    post(client, collector_key)
    monkeypatch.setenv("FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT", "2")
    proposal = {"rules": [{"id": "savings-within-income", "expression": "monthly_savings <= monthly_income",
                           "message": "x"}]}
    assert client.post(f"{RULES_URL}/dry-run", json={"rules": [{"id": "x"}]}, headers=auth(admin_key)).status_code == 422
    resp = client.post(f"{RULES_URL}/dry-run", json=proposal, headers=auth(admin_key))
    assert resp.status_code == 202, resp.get_json()
    poll = resp.headers["Location"]
    assert poll == resp.get_json()["poll"] and resp.get_json()["status"] == "queued"
    deadline = time.monotonic() + 30
    while (job := client.get(poll, headers=auth(admin_key)).get_json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.1)
    assert job["status"] == "done", job
    [rule] = job["result"]["rules"]
    assert job["result"]["responses_evaluated"] == 3 and rule["would_flag"] == 2
    assert set(rule["examples"]) == {b["submission_id"] for b in bad}
    assert conn.execute("SELECT count(*) AS n FROM flags").fetchone()["n"] == 0
    assert client.get(poll.replace(str(job["id"]), "999999"), headers=auth(admin_key)).status_code == 404
    assert client.post(f"{RULES_URL}/dry-run?latest=0", json=proposal, headers=auth(admin_key)).status_code == 422


def test_an_interrupted_job_is_reported_failed(client, conn, admin_key, make_form):
    make_form()
    form_id = conn.execute("SELECT id FROM forms").fetchone()["id"]
    job = conn.execute("""INSERT INTO rules_dry_runs (form_id, document, status, created_by, lease_until)
                          VALUES (%s, '{}', 'running', 'test', now() - interval '1 second') RETURNING id""",
                       (form_id,)).fetchone()["id"]
    body = client.get(f"{RULES_URL}/dry-runs/{job}", headers=auth(admin_key)).get_json()
    assert body["status"] == "failed" and "interrupted" in body["error"]


def test_a_rule_failing_in_postgresql_is_named_in_the_dry_run_and_the_others_still_count(
        client, conn, admin_key, collector_key, make_form):
    """As in the validation run's test: PostgreSQL is handed a pattern it rejects (the regex subset keeps real
    documents from doing so), to see that only that rule fails."""
    from fieldpipe.rules import dry_run
    from fieldpipe.rules.store import check

    make_form()
    post(client, collector_key, monthly_savings=30000, name="R2D2")
    form = conn.execute("""SELECT f.id, f.slug, 'acme' AS organization, v.questions FROM forms f
                           JOIN form_versions v ON v.form_id = f.id""").fetchone()
    _, ruleset = check({"rules": [{"id": "savings-within-income", "expression": "monthly_savings <= monthly_income",
                                   "message": "x"},
                                  {"id": "name-without-digits", "expression": 'name matches "^[^0-9]+$"', "message": "x"}]},
                       form)
    ruleset.rules[1].tree.sql_pattern = "a{1,2"
    result = dry_run.evaluate(conn, form, ruleset)
    by_id = {r["id"]: r for r in result["rules"]}
    assert result["responses_evaluated"] == 1 and by_id["savings-within-income"]["would_flag"] == 1
    assert by_id["name-without-digits"]["would_flag"] is None and "regular expression" in by_id["name-without-digits"]["error"]


def test_expressions_too_long_or_too_deep_are_refused_and_the_longest_allowed_works_everywhere(
        client, conn, admin_key, collector_key, make_form):
    make_form()
    deep = "(" * 400 + "monthly_income > 0" + ")" * 400
    too_long = "monthly_income > 0" + " and monthly_income > 0" * 50
    resp = client.put(RULES_URL, headers=auth(admin_key), json={"rules": [
        {"id": "deep", "expression": deep, "message": "x"}, {"id": "long", "expression": too_long, "message": "x"}]})
    assert resp.status_code == 422
    assert {e["rule_id"]: e["message"].split(": ")[-1] for e in resp.get_json()["errors"]} == {
        "deep": "is nested too deeply", "long": "is longer than 1000 characters; split it into several rules"}
    longest = "monthly_savings" + " + monthly_savings" * 48 + " <= monthly_income"  # as long as allowed, 49 deep
    assert len(longest) <= 1000
    put_rules(client, admin_key, "household-survey", f"rules: [{{id: sum, expression: '{longest}', message: x}}]")
    assert [w["rule_id"] for w in post(client, collector_key, monthly_savings=1000)["warnings"]] == ["sum"]
    [run] = validate_slug(conn, "household-survey")
    assert run.opened == 1


def test_a_dry_run_shows_at_most_five_examples_and_latest_must_be_a_count_of_responses(
        client, conn, admin_key, collector_key, make_form, caplog):
    import re

    from fieldpipe.rules.dry_run import MAX_LATEST

    caplog.set_level("INFO", logger="fieldpipe.rules.dry_run")
    make_form()
    over = [post(client, collector_key, monthly_savings=30000 + n)["submission_id"] for n in range(6)]
    post(client, collector_key)
    proposal = {"rules": [{"id": "savings-within-income", "expression": "monthly_savings <= monthly_income",
                           "message": "x"}]}
    whole = client.post(f"{RULES_URL}/dry-run?latest=", json=proposal, headers=auth(admin_key)).get_json()
    [rule] = whole["rules"]
    assert (whole["responses_evaluated"], rule["would_flag"], len(rule["examples"])) == (7, 6, 5)
    assert set(rule["examples"]) < set(over)
    newest = client.post(f"{RULES_URL}/dry-run?latest=3", json=proposal, headers=auth(admin_key)).get_json()
    assert (newest["responses_evaluated"], newest["rules"][0]["would_flag"]) == (3, 2)  # the 2 latest over, 1 within
    assert set(newest["rules"][0]["examples"]) == set(over[-2:])
    said = [m for m in caplog.messages if m.startswith("dry run of")]
    assert len(said) == 2 and all(re.fullmatch(r"dry run of 1 rule\(s\) over (7|3) response\(s\) of form household-survey "
                                               r"in \d+\.\d s", m) for m in said), said
    assert [m.split(" over ")[1].split(" ")[0] for m in said] == ["7", "3"]
    message = f"must be a whole number of responses from 1 to {MAX_LATEST}"
    for latest in ("0", "-1", "2.5", "ten", str(MAX_LATEST + 1)):
        resp = client.post(f"{RULES_URL}/dry-run?latest={latest}", json=proposal, headers=auth(admin_key))
        assert resp.status_code == 422, latest
        assert resp.get_json()["errors"] == [{"field": "latest", "code": "range", "message": message}], latest
    assert client.post(f"{RULES_URL}/dry-run?latest={MAX_LATEST}", json=proposal,
                       headers=auth(admin_key)).get_json()["responses_evaluated"] == 7


def test_a_dry_run_job_reads_back_who_started_it_and_an_interrupted_one_says_to_start_again(
        client, conn, admin_key, make_form):
    make_form()
    form_id = conn.execute("SELECT id FROM forms").fetchone()["id"]
    job = conn.execute("""INSERT INTO rules_dry_runs (form_id, document, latest, status, created_by, lease_until)
                          VALUES (%s, '{}', 4, 'queued', 'ana', now() - interval '1 second') RETURNING *""",
                       (form_id,)).fetchone()
    body = client.get(f"{RULES_URL}/dry-runs/{job['id']}", headers=auth(admin_key)).get_json()
    assert {k: body[k] for k in ("id", "status", "latest", "created_by", "error", "result", "poll")} == {
        "id": job["id"], "status": "failed", "latest": 4, "created_by": "ana",
        "error": "interrupted: the process running it stopped; start the dry run again", "result": None,
        "poll": f"{RULES_URL}/dry-runs/{job['id']}"}
    assert body["finished_at"] and body["created_at"]
    for missing in ("abc", "1" * 19, str(job["id"] + 1)):
        resp = client.get(f"{RULES_URL}/dry-runs/{missing}", headers=auth(admin_key))
        assert resp.status_code == 404 and resp.get_json()["detail"] == f"dry run {missing!r} was not found"


def test_a_rule_id_with_a_trailing_newline_is_refused(client, admin_key, make_form):
    make_form()
    document = {"rules": [{"id": "savings\n", "expression": "monthly_savings <= monthly_income", "message": "x"}]}
    resp = client.put(RULES_URL, json=document, headers=auth(admin_key))
    assert resp.status_code == 422, resp.get_json()
    assert [(e["field"], e["rule_id"]) for e in resp.get_json()["errors"]] == [("rules[0]", None)]
    assert "id must match ^[a-z0-9][a-z0-9_-]{0,62}$" in resp.get_json()["errors"][0]["message"]


def test_rules_that_no_longer_fit_the_form_give_no_warnings_and_say_so_in_the_log(
        client, admin_key, collector_key, make_form, caplog):
    caplog.set_level("ERROR", logger="fieldpipe.rules")
    make_form()
    put_rules(client, admin_key, "household-survey", SAVINGS)
    overspent = {"monthly_savings": 30000, "monthly_income": 20000}
    warned = client.post("/api/v1/forms/household-survey/responses", headers=auth(collector_key),
                         json=submission(answers={"name": "Asha", "city": "pune", **overspent})).get_json()
    assert [w["rule_id"] for w in warned["warnings"]] == ["savings-within-income"]
    # the form then drops the question its rule reads
    assert client.patch("/api/v1/forms/household-survey", headers=auth(admin_key), json={
        "title": "Household", "settings": {},
        "questions": [q for q in HOUSEHOLD_QUESTIONS if q["key"] != "monthly_savings"]}).status_code == 200
    resp = client.post("/api/v1/forms/household-survey/responses", headers=auth(collector_key),
                       json=submission(answers={"name": "Ravi", "city": "pune", "monthly_income": 20000}))
    assert resp.status_code == 201 and resp.get_json()["warnings"] == []  # ingestion never fails because of rules
    [logged] = [m for m in caplog.messages if m.startswith("warnings skipped, the form's rules are broken: ")]
    assert "monthly_savings" in logged


def test_expectations_read_back_with_the_rules_in_the_order_people_write_them(client, admin_key, make_form):
    make_form()
    document = {"rules": [{"message": "x", "id": "ok", "expression": "monthly_income > 0"}],
                "expectations": [{"message": "Income {monthly_income} is out of range", "severity": "warning",
                                  "kwargs": {"column": "monthly_income", "max_value": 100000},
                                  "expectation": "expect_column_values_to_be_between", "id": "income-in-range"}]}
    assert client.put(RULES_URL, json=document, headers=auth(admin_key)).status_code == 201
    for url in (RULES_URL, f"{RULES_URL}/versions/1"):
        body = client.get(url, headers=auth(admin_key)).get_json()
        assert [list(e) for e in body["rules"]] == [["id", "expression", "message"]]
        assert body["expectations"] == [{"id": "income-in-range", "expectation": "expect_column_values_to_be_between",
                                         "kwargs": {"column": "monthly_income", "max_value": 100000},
                                         "message": "Income {monthly_income} is out of range", "severity": "warning"}]
        assert [list(e) for e in body["expectations"]] == [["id", "expectation", "kwargs", "message", "severity"]]

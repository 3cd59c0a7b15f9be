"""Flags as an admin reads them: every field of an open and a closed flag, the status filter, the flags
shown with a response, and a bad filter refused naming the parameter."""

from __future__ import annotations

from datetime import datetime

from fieldpipe.rules.validate import validate_slug
from tests.helpers import auth, put_rules, submission

RULES = """
rules:
  - id: savings-within-income
    expression: monthly_savings <= monthly_income
    message: "Savings {monthly_savings} exceed income {monthly_income}"
    severity: warning
    notify: collector
"""
URL = "/api/v1/forms/household-survey"


def test_an_open_then_closed_flag_carries_every_field(client, conn, admin_key, collector_key, make_form):
    make_form()
    version = put_rules(client, admin_key, "household-survey", RULES).get_json()["version"]
    body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": 500})
    sid = body["submission_id"]
    assert client.post(f"{URL}/responses", json=body, headers=auth(collector_key)).status_code == 201
    validate_slug(conn, "household-survey")

    [flag] = client.get(f"{URL}/flags", headers=auth(admin_key)).get_json()["items"]
    opened_at = flag.pop("opened_at")
    assert isinstance(flag.pop("id"), int) and datetime.fromisoformat(opened_at.replace("Z", "+00:00"))
    assert flag == {"submission_id": sid, "revision": 1, "rule_id": "savings-within-income", "rules_version": version,
                    "severity": "warning", "notify": "collector", "message": "Savings 500 exceed income 100",
                    "status": "open", "close_reason": None, "closed_at": None}
    shown = client.get(f"{URL}/responses/{sid}", headers=auth(admin_key)).get_json()["flags"]
    assert [(f["rule_id"], f["status"], f["opened_at"]) for f in shown] == [("savings-within-income", "open", opened_at)]

    fixed = {"answers": {**body["answers"], "monthly_savings": 50}}
    assert client.patch(f"{URL}/responses/{sid}", json=fixed, headers=auth(collector_key)).status_code == 200
    validate_slug(conn, "household-survey")
    assert client.get(f"{URL}/flags", headers=auth(admin_key)).get_json()["items"] == []
    [closed] = client.get(f"{URL}/flags?status=closed", headers=auth(admin_key)).get_json()["items"]
    assert (closed["status"], closed["close_reason"], closed["opened_at"]) == ("closed", "passed", opened_at)
    assert closed["closed_at"] is not None and closed["closed_at"] >= opened_at
    assert client.get(f"{URL}/flags?status=all", headers=auth(admin_key)).get_json()["items"] == [closed]
    assert client.get(f"{URL}/responses/{sid}", headers=auth(admin_key)).get_json()["flags"] == []


def test_an_unknown_status_filter_is_422_naming_it(client, admin_key, make_form):
    make_form()
    resp = client.get(f"{URL}/flags?status=pending", headers=auth(admin_key))
    assert resp.status_code == 422
    assert [(e["field"], e["code"], e["message"]) for e in resp.get_json()["errors"]] == [
        ("status", "enum", "must be one of open, closed, all")]


def test_flags_page_through_in_order_and_a_run_counts_what_it_closed(client, conn, admin_key, collector_key,
                                                                    make_form):
    make_form()
    put_rules(client, admin_key, "household-survey", RULES)
    posted = []
    for savings in (500, 600, 700):
        body = submission(answers={"name": "Asha", "city": "pune", "monthly_income": 100, "monthly_savings": savings})
        assert client.post(f"{URL}/responses", json=body, headers=auth(collector_key)).status_code == 201
        posted.append(body)
    validate_slug(conn, "household-survey")
    seen, cursor = [], None
    for _ in range(4):
        page = client.get(f"{URL}/flags?limit=1" + (f"&cursor={cursor}" if cursor else ""),
                          headers=auth(admin_key)).get_json()
        seen += [f["message"] for f in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Savings 500 exceed income 100", "Savings 600 exceed income 100", "Savings 700 exceed income 100"]

    for body in posted[:2]:
        fixed = {"answers": {**body["answers"], "monthly_savings": 1}}
        assert client.patch(f"{URL}/responses/{body['submission_id']}", json=fixed,
                          headers=auth(collector_key)).status_code == 200
    [run] = validate_slug(conn, "household-survey")
    assert (run.opened, run.closed) == (0, {"passed": 2})  # the third is checked again (revisit window), still open

"""An organization's SMS policy for announcements: time zone, quiet hours, daily cap per recipient, whether
templates need DLT registration, the default sender id, and above how many recipients an announcement waits
for a second admin's approval.

Quiet hours and the daily cap are enforced where messages are claimed (fieldpipe/sms/outbox.py `claim_due`),
for the kinds in `POLICY_KINDS`, so a retry or a resend obeys them as the first attempt does.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from typing import Any

import psycopg

from fieldpipe.problems import FieldError, invalid

# Receipts and flag notices are transactional (the respondent or collector is waiting for them): no quiet
# hours, no cap. Announcements to parents are not.
POLICY_KINDS = ("announcement",)
DEFAULTS = {"time_zone": "Asia/Kolkata", "quiet_start": None, "quiet_end": None, "daily_cap": None,
            "dlt_required": False, "sender_id": None, "approval_threshold": 1000}
SENDER_ID = re.compile(r"^[A-Za-z0-9]{3,11}$")
CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
MAX_APPROVAL_THRESHOLD = 10_000_000


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zones this installation knows (the API document lists them)."""
    return frozenset(zoneinfo.available_timezones())


def valid_time_zone(name: Any) -> bool:
    """An IANA time zone name the system's tz database knows (Asia/Kolkata, UTC, Etc/GMT-5)."""
    return isinstance(name, str) and name in time_zones()


def policy_row(conn: psycopg.Connection, organization_id: int) -> dict:
    row = conn.execute("SELECT * FROM sms_policies WHERE organization_id = %s", (organization_id,)).fetchone()
    return {**DEFAULTS, **({k: row[k] for k in DEFAULTS} if row else {})}


def policy_body(row: dict) -> dict:
    quiet = None
    if row["quiet_start"] is not None:
        quiet = {"start": row["quiet_start"].strftime("%H:%M"), "end": row["quiet_end"].strftime("%H:%M")}
    return {"time_zone": row["time_zone"], "quiet_hours": quiet, "daily_cap": row["daily_cap"],
            "dlt_required": row["dlt_required"], "sender_id": row["sender_id"],
            "approval_threshold": row["approval_threshold"]}


def get_policy(conn: psycopg.Connection, organization_id: int) -> dict:
    return policy_body(policy_row(conn, organization_id))


def _clock(value: Any, field: str, errors: list[FieldError]) -> dt.time | None:
    if not isinstance(value, str) or not CLOCK.fullmatch(value):
        errors.append(FieldError(field, "format", "must be a local time HH:MM, e.g. 21:00"))
        return None
    return dt.time.fromisoformat(value)


def update_policy(conn: psycopg.Connection, organization_id: int, patch: Any) -> dict:
    """Apply a partial update (members sent replace the stored ones); 422 naming every bad member."""
    if not isinstance(patch, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    row = policy_row(conn, organization_id)
    errors: list[FieldError] = []
    for name in sorted(set(patch) - {"time_zone", "quiet_hours", "daily_cap", "dlt_required", "sender_id",
                                     "approval_threshold"}):
        errors.append(FieldError(name, "unknown", "no such setting"))
    if "time_zone" in patch:
        if valid_time_zone(patch["time_zone"]):
            row["time_zone"] = patch["time_zone"]
        else:
            errors.append(FieldError("time_zone", "enum", "must be an IANA time zone such as Asia/Kolkata"))
    if "quiet_hours" in patch:
        quiet = patch["quiet_hours"]
        if quiet is None:
            row["quiet_start"] = row["quiet_end"] = None
        elif not isinstance(quiet, dict) or set(quiet) != {"start", "end"}:
            errors.append(FieldError("quiet_hours", "type", 'must be {"start": "HH:MM", "end": "HH:MM"} or null'))
        else:
            start, end = _clock(quiet["start"], "quiet_hours.start", errors), _clock(quiet["end"], "quiet_hours.end", errors)
            if start is not None and start == end:
                errors.append(FieldError("quiet_hours.end", "range", "must differ from start (null turns quiet hours off)"))
            row["quiet_start"], row["quiet_end"] = start, end
    if "daily_cap" in patch:
        cap = patch["daily_cap"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or not 1 <= cap <= 1000):
            errors.append(FieldError("daily_cap", "range", "must be an integer from 1 to 1000, or null for no cap"))
        row["daily_cap"] = cap
    if "dlt_required" in patch:
        if not isinstance(patch["dlt_required"], bool):
            errors.append(FieldError("dlt_required", "type", "must be true or false"))
        row["dlt_required"] = patch["dlt_required"]
    if "sender_id" in patch:
        sender = patch["sender_id"]
        if sender is not None and (not isinstance(sender, str) or not SENDER_ID.fullmatch(sender)):
            errors.append(FieldError("sender_id", "pattern", "must be 3 to 11 letters or digits, or null"))
        row["sender_id"] = sender
    if "approval_threshold" in patch:
        limit = patch["approval_threshold"]
        if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_APPROVAL_THRESHOLD:
            errors.append(FieldError("approval_threshold", "range",
                                     f"must be an integer from 0 to {MAX_APPROVAL_THRESHOLD}"))
        row["approval_threshold"] = limit
    if errors:
        raise invalid(errors)
    conn.execute(
        """INSERT INTO sms_policies AS p (organization_id, time_zone, quiet_start, quiet_end, daily_cap, dlt_required,
                                          sender_id, approval_threshold)
           VALUES (%(org)s, %(time_zone)s, %(quiet_start)s, %(quiet_end)s, %(daily_cap)s, %(dlt_required)s,
                   %(sender_id)s, %(approval_threshold)s)
           ON CONFLICT (organization_id) DO UPDATE
              SET time_zone = EXCLUDED.time_zone, quiet_start = EXCLUDED.quiet_start, quiet_end = EXCLUDED.quiet_end,
                  daily_cap = EXCLUDED.daily_cap, dlt_required = EXCLUDED.dlt_required,
                  sender_id = EXCLUDED.sender_id, approval_threshold = EXCLUDED.approval_threshold, updated_at = now()""",
        {**row, "org": organization_id},
    )
    return policy_body(row)

"""What the two outboxes (SMS messages, `fieldpipe.sms.outbox`; webhook deliveries, `fieldpipe.webhooks.delivery`)
share, written once so an operator and a reader of the code meet the same words in both.

Both tables carry the same columns for the same things:
    status           'queued' until `next_attempt_at`, then 'sending' while claimed, then a final state
    attempts         how many attempts were made (the one being made, while 'sending')
    next_attempt_at  when a queued row is next due (a retry's backoff ends)
    lease_until      when a 'sending' row's claim runs out: past it, the worker that claimed the row is taken to
                     have stopped (SMS settles the row without resending blindly; webhooks take it again)
The states after 'sending' really differ and stay each outbox's own: SMS has `sent` and `unknown` (the provider
may have it), webhooks `delivered` and `cancelled` (the webhook was removed); both have `failed`.

Each attempt is kept with one public shape (`attempt_body`). The replay verb is `retry` (`POST .../retry`, the
CLI's `retry`); a row that cannot be retried in its state is refused with 409 `not-retryable`. "Retry all"
(`POST /api/v1/messages/retry`, `/api/v1/deliveries/retry`) takes the same filters for both (`replay_filter`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Mapping

from fieldpipe.problems import FieldError, Problem, invalid

OUTCOMES = ("sent", "delivered", "retry", "failed", "unknown", "resend")
ATTEMPT_FIELDS = ("attempt", "at", "outcome", "status_code", "error_code", "error", "duration_ms", "retry_after_s")


def attempt_body(row: dict) -> dict:
    """The public shape of one attempt. `attempt` counts from 1; `at` is when it was made; `status_code` is the
    HTTP status the provider or endpoint answered (null when none); `error_code` the provider's own code (SMS
    only); `duration_ms` how long the endpoint took (webhooks only); `retry_after_s` the wait the provider asked
    for. Each outbox selects its attempt columns under these names."""
    return {name: row[name] for name in ATTEMPT_FIELDS}


def _column(alias: str, name: str) -> str:
    return f"{alias}.{name}" if alias else name


def due(alias: str = "") -> str:
    """SQL condition: the row is queued and its next attempt is due."""
    return f"({_column(alias, 'status')} = 'queued' AND {_column(alias, 'next_attempt_at')} <= clock_timestamp())"


def lease_expired(alias: str = "") -> str:
    """SQL condition: the row was claimed ('sending') and its lease ran out (its worker stopped)."""
    return f"({_column(alias, 'status')} = 'sending' AND {_column(alias, 'lease_until')} < clock_timestamp())"


def after(seconds: str) -> str:
    """SQL timestamp `seconds` (an SQL expression or parameter) from now: a lease's end or a retry's time."""
    return f"clock_timestamp() + make_interval(secs => {seconds})"


def claim(alias: str, lease_seconds: str) -> str:
    """SQL SET list that claims a row for one attempt, leased for `lease_seconds` (an SQL parameter)."""
    return (f"status = 'sending', attempts = {alias}.attempts + 1, lease_until = {after(lease_seconds)}, "
            "updated_at = clock_timestamp()")


def not_retryable(what: str, status: str, which_can: str) -> Problem:
    """The 409 of the replay verb: `what` (e.g. "message 7") is `status`; `which_can` says what can be retried."""
    return Problem("not-retryable", f"{what} is {status}; only {which_can} can be retried")


@dataclass(frozen=True)
class ReplayFilter:
    """Which rows a "retry all" requeues: in this state, last changed at or after `since`, of this kind."""

    status: str
    since: dt.datetime | None
    kind: str | None


def replay_filter(args: Mapping[str, str], statuses: tuple[str, ...]) -> ReplayFilter:
    """The filters of a "retry all" request (`status` defaults to the first of `statuses`), or 422 naming
    each bad one."""
    from fieldpipe.responses import parse_timestamp

    errors: list[FieldError] = []
    status = args.get("status", statuses[0])
    if status not in statuses:
        errors.append(FieldError("status", "enum", f"only {' or '.join(statuses)} items can be retried"))
    since = parse_timestamp(args["since"], "since", errors) if "since" in args else None
    kind = args.get("kind")
    if kind is not None and not kind.strip():
        errors.append(FieldError("kind", "required", "must not be empty"))
    if errors:
        raise invalid(errors)
    return ReplayFilter(status, since, kind)

"""The public shape of one attempt at an outbound effect. SMS sends and webhook deliveries share it, so an
operator reads both histories the same way; each side selects its columns under these names (ATTEMPT_FIELDS)."""

from __future__ import annotations

OUTCOMES = ("sent", "delivered", "retry", "failed", "unknown", "resend")
ATTEMPT_FIELDS = ("attempt", "at", "outcome", "status_code", "error_code", "error", "duration_ms", "retry_after_s")


def attempt_body(row: dict) -> dict:
    """`attempt` counts from 1; `at` is when it was made; `status_code` is the HTTP status the provider or
    endpoint answered (null when none); `error_code` the provider's own code (SMS only); `duration_ms` how long
    the endpoint took (webhooks only); `retry_after_s` the wait the provider asked for."""
    return {name: row[name] for name in ATTEMPT_FIELDS}

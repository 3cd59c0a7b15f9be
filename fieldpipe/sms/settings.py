"""SMS settings from the environment (read on each call so tests and processes can override them)."""

from __future__ import annotations

import os
from dataclasses import dataclass

PROVIDERS = ("file", "sns", "twilio")
# Messages per second when FIELDPIPE_SMS_RATE_<PROVIDER> is not set. Twilio's default is about one per
# second per long code; SNS's default SMS throughput is 20 per second.
DEFAULT_RATES = {"file": 100.0, "sns": 20.0, "twilio": 1.0}


@dataclass(frozen=True)
class SmsSettings:
    provider: str
    rate: float  # messages per second for `provider`, never exceeded
    max_segments: int
    max_attempts: int
    batch_size: int
    concurrency: int  # sender threads, so a provider's latency does not limit the rate
    backoff_base_s: float
    backoff_cap_s: float
    lease_s: float  # a row 'sending' for longer than this was abandoned by a killed dispatcher

    @classmethod
    def from_env(cls, provider: str | None = None) -> "SmsSettings":
        env = os.environ.get
        name = provider or env("FIELDPIPE_SMS_PROVIDER", "file")
        if name not in PROVIDERS:
            raise ValueError(f"FIELDPIPE_SMS_PROVIDER must be one of {', '.join(PROVIDERS)}, not {name!r}")
        return cls(
            provider=name,
            rate=float(env(f"FIELDPIPE_SMS_RATE_{name.upper()}", DEFAULT_RATES[name])),
            max_segments=max_segments(),
            max_attempts=int(env("FIELDPIPE_SMS_MAX_ATTEMPTS", 8)),
            batch_size=int(env("FIELDPIPE_SMS_BATCH_SIZE", 500)),
            concurrency=int(env("FIELDPIPE_SMS_CONCURRENCY", 16)),
            backoff_base_s=float(env("FIELDPIPE_SMS_BACKOFF_BASE_S", 30)),
            backoff_cap_s=float(env("FIELDPIPE_SMS_BACKOFF_CAP_S", 6 * 3600)),
            lease_s=float(env("FIELDPIPE_SMS_LEASE_S", 600)),
        )


def max_segments() -> int:
    """Read on its own, so producers (ingestion among them) never depend on the sending configuration."""
    return int(os.environ.get("FIELDPIPE_SMS_MAX_SEGMENTS", 4))

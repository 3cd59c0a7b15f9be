"""Staying inside Google's quotas: a client-side request limiter and retries with backoff.

Google allows 60 requests a minute per user (read and write each). Every export shares one budget,
`sheets_limiter()`, held in PostgreSQL (fieldpipe/ratelimit.py), so the rate holds however many exports
and Airflow workers run at once; the Airflow pool `sheets_api` only bounds how many run. 429 answers were not applied and are always retried;
5xx answers are retried for idempotent requests only (a 500 on an append may have written the rows:
the export reconciles against the id column instead, see export.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import psycopg
import requests

from fieldpipe.config import Settings
from fieldpipe.ratelimit import RateLimiter
from fieldpipe.retry import Backoff, retry_after_seconds

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def sheets_limiter(conn: psycopg.Connection) -> RateLimiter:
    """The project's Sheets budget (FIELDPIPE_SHEETS_REQUESTS_PER_MINUTE, default 60, bursts of as many),
    held in the database `conn` talks to, so every export in every process and worker shares it."""
    per_minute = Settings.from_env().sheets.requests_per_minute
    return RateLimiter.beside(conn, "sheets", per_minute / 60, burst=max(int(per_minute), 1))


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 64.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        sheets = Settings.from_env().sheets
        return cls(attempts=sheets.retry_attempts, base_delay=sheets.backoff_seconds)

    def delay(self, attempt: int, response: requests.Response) -> float:
        """Backoff with jitter for retry `attempt + 1`, never sooner than the server's Retry-After."""
        return Backoff(self.base_delay, self.max_delay, retry_after_cap=self.max_delay).delay(
            attempt + 1, retry_after_seconds(response.headers.get("Retry-After")))

    def send(self, send: Callable[[], requests.Response], idempotent: bool,
             limiter: RateLimiter | None = None) -> requests.Response:
        """Send through the limiter; retry 429 always and 5xx when `idempotent`; return the last response."""
        attempt = 0
        while True:
            if limiter is not None:
                limiter.acquire()
            response = send()
            retryable = response.status_code == 429 or (idempotent and response.status_code in RETRYABLE_STATUSES)
            if not retryable or attempt + 1 >= self.attempts:
                return response
            wait = self.delay(attempt, response)
            attempt += 1
            log.warning("Sheets API answered %s; retry %d of %d in %.1f s",
                        response.status_code, attempt, self.attempts - 1, wait)
            time.sleep(wait)

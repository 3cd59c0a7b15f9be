"""Staying inside Google's quotas: a client-side request limiter and retries with backoff.

Google allows 60 requests a minute per user (read and write each). Every export in a process shares
`shared_limiter()`; across processes the Airflow pool `sheets_api` bounds how many exports run at once,
so the total stays at (pool slots x limiter rate). 429 answers were not applied and are always retried;
5xx answers are retried for idempotent requests only (a 500 on an append may have written the rows:
the export reconciles against the id column instead, see export.py).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable

import requests

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class RateLimiter:
    """A token bucket: `per_minute` requests a minute on average, bursts up to `burst`."""

    def __init__(self, per_minute: float, burst: int | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(int(per_minute), 1))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> None:
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
                self.waited_seconds += wait
            time.sleep(wait)


_shared: RateLimiter | None = None
_shared_lock = threading.Lock()


def shared_limiter() -> RateLimiter:
    """The one limiter of this process (rate from FIELDPIPE_SHEETS_REQUESTS_PER_MINUTE, default 60)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = RateLimiter(float(os.environ.get("FIELDPIPE_SHEETS_REQUESTS_PER_MINUTE", 60)))
        return _shared


def retry_after_seconds(response: requests.Response) -> float | None:
    """Retry-After as seconds, whether given as a number or as an HTTP date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        try:
            return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
        except (TypeError, ValueError):
            return None


@dataclass
class RetryPolicy:
    attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 64.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        return cls(attempts=int(os.environ.get("FIELDPIPE_SHEETS_RETRY_ATTEMPTS", 6)),
                   base_delay=float(os.environ.get("FIELDPIPE_SHEETS_BACKOFF_SECONDS", 1.0)))

    def delay(self, attempt: int, response: requests.Response) -> float:
        """Retry-After when the server names one, else exponential backoff with jitter."""
        named = retry_after_seconds(response)
        if named is not None:
            return min(named, self.max_delay)
        return min(self.base_delay * 2 ** attempt, self.max_delay) * random.uniform(0.5, 1.0)

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

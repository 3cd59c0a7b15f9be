"""When to try an outbound call again: exponential backoff with jitter, never sooner than the server asks.

One schedule for every outbound effect (SMS, webhooks, Sheets): the n-th retry waits half to all of
`base * 2^(n-1)`, at most `cap`; the jitter keeps many senders from coming back at the same instant.
A `Retry-After` answer (seconds or an HTTP date, RFC 9110 section 10.2.3) is a floor. A caller that waits
in-process (Sheets) or has a window to respect (webhooks) caps it; the SMS outbox honours it in full, its
attempts being bounded by count instead.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable


def retry_after_seconds(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """A `Retry-After` header value as seconds from now (never negative), or None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - now(), 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


@dataclass(frozen=True)
class Backoff:
    base: float  # seconds before the first retry, about (half to all of it)
    cap: float   # no backoff is longer than this
    retry_after_cap: float | None = None  # the longest Retry-After honoured; None: however long it is

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1 for the first)."""
        wait = min(self.cap, self.base * 2 ** min(max(retry, 1) - 1, 60)) * random.uniform(0.5, 1.0)
        if retry_after is not None:
            wait = max(wait, retry_after if self.retry_after_cap is None else min(retry_after, self.retry_after_cap))
        return wait

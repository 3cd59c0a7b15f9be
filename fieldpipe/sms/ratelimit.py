"""A token bucket shared by a dispatcher's sender threads, so a provider's rate is never exceeded.

Each `acquire` reserves the next free slot under a lock and sleeps until it, so in any interval of T
seconds at most `burst + rate * T` sends start, however many threads ask; a thread that wakes more than
one interval late (a stalled process) takes a fresh slot rather than going out in a bunch. `defer` moves the next slot
later for everyone, which is how a provider's Retry-After holds back the whole provider, not one message.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: int = 1, clock: Callable[[], float] = time.monotonic):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate, self.burst = rate, burst
        self._interval = 1.0 / rate
        self._clock = clock
        self._lock = threading.Lock()
        self._next_free = clock()  # when the bucket is full again (the "theoretical arrival time")

    def acquire(self) -> float:
        """Block until a token is ours; return the time it was granted for."""
        slot = self._reserve()
        while True:
            now = self._clock()
            if now < slot:
                time.sleep(slot - now)
            elif now - slot > self._interval:
                # woke late (the process was stalled): others may be late too, so take a fresh slot
                # instead of going out together with them
                slot = self._reserve()
                if slot <= self._clock():
                    return slot
            else:
                return slot

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            # with a full bucket the slot is now; a busy bucket hands out slots one interval apart
            slot = max(now, self._next_free - (self.burst - 1) * self._interval)
            self._next_free = max(self._next_free, now) + self._interval
            return slot

    def defer(self, seconds: float) -> None:
        """Hand out no token for `seconds` from now (the provider asked us to slow down)."""
        with self._lock:
            self._next_free = max(self._next_free, self._clock() + seconds + (self.burst - 1) * self._interval)

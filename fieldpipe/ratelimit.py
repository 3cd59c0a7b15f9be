"""One rate limiter for every outbound call (SMS providers, the Sheets API, webhook endpoints), its budget
held in PostgreSQL so the rate holds however many processes, threads and Airflow workers share it.

The algorithm is GCRA, a token bucket kept as one timestamp per budget: `next_free`, when the bucket is
whole again. Taking a token moves `next_free` one interval (1 / rate) later than max(now, next_free); the
token is usable at `next_free - burst x interval`. So in any window of T seconds at most
`burst + rate x T` tokens are granted across all callers. The database clock is the only clock, so the
callers' clocks need not agree. `defer` moves `next_free` later for everyone: a provider's Retry-After
holds back the whole provider, not one message.

A caller that wakes more than one interval after its slot (a stalled process) takes a fresh slot rather
than going out in a bunch with the others.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

import psycopg
from psycopg.rows import tuple_row

# One statement: take the next `count` slots of `name` (creating the budget full) and say how far from now the
# last one ends; slot i of n is usable (n - 1 - i + burst) intervals before that.
TAKE_SQL = """
WITH now AS (SELECT clock_timestamp() AS t)
INSERT INTO rate_limits AS r (name, next_free)
SELECT %(name)s, t + make_interval(secs => %(interval)s * %(count)s) FROM now
ON CONFLICT (name) DO UPDATE
   SET next_free = greatest(r.next_free, (SELECT t FROM now)) + make_interval(secs => %(interval)s * %(count)s)
RETURNING extract(epoch FROM r.next_free - (SELECT t FROM now))::float8 AS end_s
"""

DEFER_SQL = """
INSERT INTO rate_limits AS r (name, next_free)
VALUES (%(name)s, clock_timestamp() + make_interval(secs => %(until)s))
ON CONFLICT (name) DO UPDATE SET next_free = greatest(r.next_free, excluded.next_free)
"""


class _Connection:
    """One autocommit connection, opened on first use, shared by a limiter's threads and its `named` siblings."""

    def __init__(self, connect: Callable[[], psycopg.Connection]):
        self.connect = connect
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()

    def execute(self, sql: str, params: dict) -> tuple:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self.connect()
                self._conn.autocommit = True
            with self._conn.cursor(row_factory=tuple_row) as cur:
                cur.execute(sql, params)
                return cur.fetchone() if cur.description else ()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class RateLimiter:
    """`rate` grants a second on average to the callers of budget `name`, bursts of up to `burst`.

    `connect` opens a connection to the application database; the limiter keeps one (autocommit, shared
    by its threads) and takes each token with one statement on it.
    """

    def __init__(self, connect: Callable[[], psycopg.Connection], name: str, rate: float, burst: int = 1,
                 _shared: "_Connection | None" = None):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.name, self.rate, self.burst = name, rate, burst
        self.interval = 1.0 / rate
        self._connection = _shared or _Connection(connect)

    def named(self, name: str) -> "RateLimiter":
        """The same rate over another budget (e.g. one per webhook endpoint), on this limiter's connection."""
        return RateLimiter(self._connection.connect, name, self.rate, self.burst, _shared=self._connection)

    @classmethod
    def beside(cls, conn: psycopg.Connection, name: str, rate: float, burst: int = 1) -> "RateLimiter":
        """A limiter whose own connection goes to the database `conn` is connected to."""
        params = {**conn.info.get_parameters(), "password": conn.info.password}
        return cls(lambda: psycopg.connect(**{k: v for k, v in params.items() if v}), name, rate, burst)

    def reserve(self, count: int) -> list[float]:
        """Reserve the next `count` slots in one statement; return when each comes, on this process's monotonic
        clock, in order (a caller with many calls to make takes their tokens at once, then waits for each)."""
        [end] = self._connection.execute(TAKE_SQL, {"name": self.name, "interval": self.interval, "count": count})
        now = time.monotonic()
        return [now + max(0.0, end - (count - 1 - i + self.burst) * self.interval) for i in range(count)]

    def _take(self) -> float:
        """Reserve the next slot; return when it comes, on this process's monotonic clock."""
        return self.reserve(1)[0]

    def acquire(self) -> None:
        """Block until a token of the budget is ours."""
        slot = self._take()
        while True:
            now = time.monotonic()
            if now < slot:
                time.sleep(slot - now)
            elif now - slot > self.interval:
                # woke late (the process was stalled): others may be late too, so take a fresh slot
                # instead of going out together with them
                slot = self._take()
                if slot <= time.monotonic():
                    return
            else:
                return

    def defer(self, seconds: float) -> None:
        """Grant no token of the budget for `seconds` from now (the far end asked us to slow down)."""
        self._connection.execute(DEFER_SQL, {"name": self.name, "until": seconds + (self.burst - 1) * self.interval})

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> "RateLimiter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

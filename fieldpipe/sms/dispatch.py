"""The dispatch loop: settle abandoned claims, then claim, send and record batches until nothing is due.

Within a batch, messages are handed to the provider in chunks: each chunk is marked `handed` (committed)
before its sends start, sends run on a thread pool paced by the provider's rate limiter (fieldpipe/ratelimit.py, its budget
shared by every dispatcher), and outcomes are
recorded chunk by chunk. A chunk is marked while the previous one is still sending, so bookkeeping never
stalls the rate; a kill loses at most the outcomes of two chunks (about a second of sends), which then
become `unknown` (or are confirmed, for providers that can tell), never resent blindly.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from typing import Callable

import psycopg

from fieldpipe.ratelimit import RateLimiter
from fieldpipe.sms import outbox
from fieldpipe.sms.providers import Provider, SendResult
from fieldpipe.config import SmsSettings

log = logging.getLogger("fieldpipe.sms")
IDLE_POLL_S = 0.05
# While a run waits for a retry to come due, it looks for newly queued messages this often: a receipt queued
# meanwhile goes out now, not after the retry (the next run cannot start while this one waits).
NEW_WORK_POLL_S = 1.0


@dataclass
class DispatchReport:
    provider: str
    configured_rate: float
    batches: int = 0
    requests: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "retry": 0, "failed": 0, "unknown": 0})
    abandoned: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0

    def as_dict(self) -> dict:
        return {"provider": self.provider, "configured_rate": self.configured_rate, "batches": self.batches,
                "requests": self.requests, **self.counts, "abandoned_settled": self.abandoned,
                "elapsed_s": round(self.elapsed_s, 3), "rate": round(self.rate, 2)}


def _send(provider: Provider, limiter: RateLimiter, message: dict) -> SendResult:
    limiter.acquire()
    try:
        result = provider.send(message)
    except Exception as err:  # a bug after the request may have gone out: do not guess, do not resend
        log.exception("provider %s raised for message %s", provider.name, message["id"])
        return SendResult("unknown", error=f"{type(err).__name__} in the {provider.name} provider: {err}")
    if result.outcome == "retry" and result.retry_after:
        limiter.defer(result.retry_after)  # the provider as a whole asked to slow down
    return result


def _chunk_size(settings: SmsSettings, batch_size: int) -> int:
    """About half a second of sends: small enough to bound what a kill leaves unknown."""
    return max(1, min(batch_size, int(settings.rate / 2) + 1, 500))


@dataclass
class _Batch:
    number: int
    claimed: int
    started: float
    outstanding: int
    counts: dict[str, int] = field(default_factory=lambda: {"sent": 0, "retry": 0, "failed": 0, "unknown": 0})


class _Pipeline:
    """Claimed messages flow through: marked handed in chunks, sent on the pool, recorded as they finish.

    The next batch is claimed and the next chunk marked while the previous chunk is still sending, so the
    rate limiter never waits on the outbox's bookkeeping.
    """

    def __init__(self, conn: psycopg.Connection, pool: ThreadPoolExecutor, provider: Provider,
                 limiter: RateLimiter, settings: SmsSettings, batch_size: int, report: DispatchReport,
                 progress: Callable[[int], object] | None = None):
        self.conn, self.pool, self.provider, self.limiter, self.settings = conn, pool, provider, limiter, settings
        self.report, self.progress = report, progress
        self.chunk = _chunk_size(settings, batch_size)
        self.waiting: deque[tuple[_Batch, dict]] = deque()  # claimed, not yet handed
        self.in_flight: deque[tuple[_Batch, dict, Future]] = deque()
        self.done: list[tuple[_Batch, dict, SendResult]] = []

    def add_batch(self, messages: list[dict]) -> None:
        self.report.batches += 1
        batch = _Batch(self.report.batches, len(messages), time.monotonic(), len(messages))
        self.waiting.extend((batch, m) for m in messages)

    def hand_next_chunk(self) -> None:
        part = [self.waiting.popleft() for _ in range(min(self.chunk, len(self.waiting)))]
        with self.conn.transaction():
            outbox.mark_handed(self.conn, [m for _, m in part])
        self.in_flight.extend((b, m, self.pool.submit(_send, self.provider, self.limiter, m)) for b, m in part)
        self.collect(keep=len(part))  # leave this chunk sending while the caller claims or marks the next

    def collect(self, keep: int) -> None:
        """Wait until at most `keep` sends are in flight, then record what finished (one statement)."""
        while len(self.in_flight) > keep:
            batch, message, future = self.in_flight.popleft()
            self.done.append((batch, message, future.result()))
        self.record()

    def record(self) -> None:
        if not self.done:
            return
        with self.conn.transaction():
            outcomes = outbox.record_outcomes(self.conn, [(m, r) for _, m, r in self.done], self.settings)
        finished = []
        for (batch, _, _), outcome in zip(self.done, outcomes):
            batch.counts[outcome] += 1
            self.report.counts[outcome] += 1
            batch.outstanding -= 1
            if batch.outstanding == 0:
                finished.append(batch)
        self.report.requests += len(self.done)
        if self.progress:
            self.progress(len(self.done))
        self.done.clear()
        for batch in finished:
            self.log_batch(batch)

    def log_batch(self, batch: _Batch) -> None:
        took = time.monotonic() - batch.started
        with self.conn.transaction():
            queued = outbox.status_counts(self.conn)["queued"]
        c = batch.counts
        log.info("sms batch %d via %s: claimed %d, sent %d, retry later %d, failed %d, unknown %d; "
                 "%d still queued; %.1f msg/s (configured %.1f)", batch.number, self.provider.name, batch.claimed,
                 c["sent"], c["retry"], c["failed"], c["unknown"], queued, batch.claimed / took if took else 0.0,
                 self.settings.rate)


def dispatch(conn_factory: Callable[[], psycopg.Connection], provider: Provider, batch_size: int | None = None, *,
             settings: SmsSettings | None = None,
             max_seconds: float | None = None, wait_for_retries: bool = True,
             progress: Callable[[int], object] | None = None) -> DispatchReport:
    """Send what is due through `provider` until nothing is (or `max_seconds` pass); return what happened.

    With `wait_for_retries`, messages whose retry falls within the time left are waited for and sent too.
    Each batch logs its counts, the queue left and the rate achieved; `progress(n)` hears of every n
    messages whose attempt is recorded.
    """
    settings = settings or SmsSettings.from_env(provider.name)
    batch_size = batch_size or settings.batch_size
    report = DispatchReport(provider.name, settings.rate)
    started = time.monotonic()

    def time_left() -> float:
        return float("inf") if max_seconds is None else max_seconds - (time.monotonic() - started)

    # The provider's budget is shared by every dispatcher in every process (the `sms` pool runs two).
    limiter = RateLimiter(conn_factory, f"sms:{provider.name}", settings.rate)
    with closing(conn_factory()) as conn, limiter, ThreadPoolExecutor(settings.concurrency, "sms-send") as pool:
        with conn.transaction():
            report.abandoned = outbox.settle_abandoned(conn, provider)
        if any(report.abandoned.values()):
            log.warning("settled claims abandoned by a stopped dispatcher: %s", report.abandoned)
        pipeline = _Pipeline(conn, pool, provider, limiter, settings, batch_size, report, progress)
        while True:
            if not pipeline.waiting and time_left() > 0:
                # claim no more than the time left allows at the configured rate
                limit = int(max(1, min(batch_size, time_left() * settings.rate + 1)))
                with conn.transaction():
                    batch = outbox.claim_due(conn, provider.name, limit, settings.lease_s)
                if batch:
                    pipeline.add_batch(batch)
            if pipeline.waiting:
                pipeline.hand_next_chunk()
                continue
            if pipeline.in_flight:
                pipeline.collect(keep=0)  # retries they schedule may be due soon
                continue
            with conn.transaction():
                wait = outbox.next_due_in(conn)
            if not wait_for_retries or wait is None or wait >= time_left():
                break
            time.sleep(min(max(wait, IDLE_POLL_S), NEW_WORK_POLL_S))
    report.elapsed_s = time.monotonic() - started
    log.info("sms dispatch via %s done: %s", provider.name, report.as_dict())
    return report


def dispatch_configured(conn_factory: Callable[[], psycopg.Connection], provider: str | None = None,
                        batch_size: int | None = None, max_seconds: float | None = None,
                        progress: Callable[[int], object] | None = None) -> DispatchReport:
    """`dispatch` through the provider the environment configures (what the DAG and the CLI run)."""
    from fieldpipe.sms.providers import make_provider

    settings = SmsSettings.from_env(provider)
    return dispatch(conn_factory, make_provider(settings.provider), batch_size, settings=settings,
                    max_seconds=max_seconds, progress=progress)

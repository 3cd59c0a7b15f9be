"""Events from the database: new work wakes its pipeline within seconds; the cron schedules stay the safety net.

Triggers in the database (migration 0015) NOTIFY the channel `fieldpipe_events` with a topic as the payload
in every transaction that writes new work: `responses` (new or edited responses, a new rules version) and
`sms_outbox` (messages queued). PostgreSQL delivers a notification when its transaction commits, so the
request pays nothing but a small statement-level trigger, and a rolled-back request wakes nobody.

`coalesced_events` LISTENs and turns the notifications of one topic into few events: the first at once,
then at most one per `min_interval` however many arrive (a burst of ten thousand submissions is two or
three events); the DAGs' `max_active_runs=1` folds whatever arrives during a run into one next run.
A notification that names no known topic is ignored with a log line. After every (re)connection it emits
one event, because notifications sent while nobody listened are gone: a restarted triggerer or database
then costs a run, never a lost piece of work (the pipelines work from watermarks and queues, not from the
events, and their cron schedules catch up whatever an event missed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncIterator, Awaitable, Callable

import psycopg
from psycopg import sql

from fieldpipe.pipelines.names import EVENT_TOPICS, EVENTS_CHANNEL
from fieldpipe.retry import Backoff

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 2.0  # at most one event per topic this often: a burst makes a handful of runs, not thousands
IDLE_CHECK_S = 30.0  # with nothing heard for this long, check the connection (a silent network failure)
RECONNECT = Backoff(base=1.0, cap=30.0)

Connect = Callable[[], Awaitable[psycopg.AsyncConnection]]


def event(topic: str, reason: str, notifications: int = 0) -> dict:
    """An event's payload (it lands in the asset event's extra, visible in the Airflow UI)."""
    return {"topic": topic, "reason": reason, "notifications": notifications}


async def coalesced_events(connect: Connect, topic: str, *, channel: str = EVENTS_CHANNEL,
                           min_interval: float = MIN_INTERVAL_S, idle_check: float = IDLE_CHECK_S,
                           backoff: Backoff = RECONNECT) -> AsyncIterator[dict]:
    """Events for `topic`, forever: one after each (re)connection (`listening`), then `notified` ones."""
    if topic not in EVENT_TOPICS:
        raise ValueError(f"unknown event topic {topic!r}; known: {', '.join(EVENT_TOPICS)}")
    failures = 0
    while True:
        try:
            async with await connect() as conn:
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                if failures:
                    log.info("listening on %s for %s again after %d failed attempt(s)", channel, topic, failures)
                else:
                    log.info("listening on %s for %s", channel, topic)
                failures = 0
                yield event(topic, "listening")  # whatever was committed while nobody listened
                async for notifications in _coalesced(conn, topic, channel, min_interval, idle_check):
                    yield event(topic, "notified", notifications)
        except psycopg.OperationalError as err:
            failures += 1
            delay = backoff.delay(failures)
            # The error's class only: its text may carry the connection's address.
            log.warning("database connection for %s events failed (%s); reconnecting in %.1f s",
                        topic, type(err).__name__, delay)
            await asyncio.sleep(delay)


async def _coalesced(conn: psycopg.AsyncConnection, topic: str, channel: str, min_interval: float,
                     idle_check: float) -> AsyncIterator[int]:
    """How many notifications of `topic` each event stands for: the first at once, then one per `min_interval`."""
    pending = 0
    last_event = -float("inf")
    while True:
        now = time.monotonic()
        if pending and now - last_event >= min_interval:
            yield pending
            pending, last_event = 0, time.monotonic()
            continue
        # Idle: wait for the first notification. Cooling down: gather until the interval is over.
        wait, stop_after = (last_event + min_interval - now, None) if pending else (idle_check, 1)
        heard = False
        async for notify in conn.notifies(timeout=wait, stop_after=stop_after):
            heard = True
            if notify.payload == topic:
                pending += 1
            elif notify.payload not in EVENT_TOPICS:
                # Not a topic we know: nothing to wake. The cron schedule still catches any work behind it.
                log.warning("ignored a notification on %s that names no known topic (%d characters); "
                            "known topics: %s", channel, len(notify.payload), ", ".join(EVENT_TOPICS))
        if not heard and not pending:
            await conn.execute("SELECT 1")  # a connection lost without a word fails here, not never

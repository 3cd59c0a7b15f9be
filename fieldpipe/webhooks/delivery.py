"""The webhook deliveries outbox: enqueue once, claim with SKIP LOCKED, attempt, record, retry or fail.

Policy (docs/webhooks.md): a 2xx answer delivers. 5xx, 408, 429, timeouts and connection errors are retried
with exponential backoff and jitter (Retry-After honoured) until `retry_window` after the event; any other
answer (3xx, other 4xx) fails the delivery at once. Every attempt is a row in webhook_attempts. A delivery
claimed by a worker that stopped is taken again once its `lease_until` passes. The words shared with the SMS
outbox (next attempt, lease, attempt history, `retry`) are `fieldpipe.outbox`'s.

Circuit breaker per webhook: retryable failures add up in `consecutive_failures`; from `breaker_threshold`
on, the endpoint is left alone until `open_until` (doubling, capped), then probed with one delivery per
batch until one succeeds. A claim takes at most `per_endpoint` deliveries of one webhook per batch, so a
backlog or a dead receiver never crowds out the others (an endpoint failing `breaker_threshold` times in a
row hands the rest of its share back untried), and no endpoint gets more than `endpoint_rate` requests a
second from all workers together (a budget per webhook in fieldpipe.ratelimit, reserved per batch).

Set-based: a batch is grouped by endpoint (target checked and secret unsealed once), sent `concurrency` at a
time over kept-alive connections (transport.Session), and recorded in one statement.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

import psycopg

from fieldpipe import outbox, paging
from fieldpipe.domains import json_value
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.ratelimit import RateLimiter
from fieldpipe.retry import Backoff
from fieldpipe.webhooks import transport
from fieldpipe.webhooks.secret_box import SecretUnavailable, unseal
from fieldpipe.webhooks.signing import SIGNATURE_HEADER, sign
from fieldpipe.webhooks.targets import Resolver, Target, TargetRefused, check_target, system_resolver

log = logging.getLogger("fieldpipe.webhooks")

RETRYABLE_STATUS = frozenset({408, 429})
USER_AGENT = "fieldpipe-webhooks/1"
STATUSES = ("queued", "sending", "delivered", "failed", "cancelled")


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0                     # total seconds per attempt: connect, send, answer
    max_response_bytes: int = 64 * 1024       # read at most this much of an answer
    retry_window: timedelta = timedelta(hours=24)
    backoff_base: float = 30.0                # first retry after about this many seconds, then doubling
    backoff_cap: float = 3600.0
    breaker_threshold: int = 5                # consecutive retryable failures that open an endpoint's circuit
    breaker_base: float = 60.0
    breaker_cap: float = 3600.0
    batch_size: int = 200
    per_endpoint: int = 50                    # a batch's share of one endpoint: about a second of its rate
    endpoint_rate: float = 50.0               # requests a second to one endpoint, across every worker
    concurrency: int = 8

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.backoff_base, self.backoff_cap, retry_after_cap=self.backoff_cap)


@dataclass(frozen=True)
class AttemptResult:
    delivery_id: int
    webhook_id: int
    attempt: int
    started_at: datetime
    duration_ms: int
    status_code: int | None
    error: str | None
    outcome: str          # delivered | retry | failed
    delay: float          # seconds until the next attempt when outcome is retry

    @property
    def endpoint_alive(self) -> bool:
        """The receiver answered, even if it refused this event: its circuit should close."""
        return self.outcome != "retry"


# The body of a delivery, fixed once when it is queued: the exact bytes signed and sent on every attempt.
_BODY_SQL = """jsonb_build_object('id', e.event_key, 'type', e.event,
                                  'created_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                                  'data', e.data)::text"""


def enqueue(conn: psycopg.Connection, events: Iterable[dict], policy: DeliveryPolicy = DeliveryPolicy()) -> int:
    """One delivery per (event, live webhook of its organization that wants it); returns how many are new.

    Each event is {organization_id, event, event_key, data} and, for an event about one form, `form_id`: a
    webhook of a form's task (a `webhook` task) gets only its form's events, while that task is enabled.
    `event_key` is stable for the same fact, so producing an event again (a rerun, a retried task) adds
    nothing. The body is fixed here, once.
    """
    events = [{"form_id": None, **e} for e in events]
    if not events:
        return 0
    cur = conn.execute(
        f"""INSERT INTO webhook_deliveries (webhook_id, event, event_key, body, give_up_at)
           SELECT w.id, e.event, e.event_key, {_BODY_SQL}, now() + %(window)s
           FROM jsonb_to_recordset(%(events)s::jsonb)
                AS e(organization_id bigint, form_id bigint, event text, event_key text, data jsonb)
           JOIN webhooks w ON w.organization_id = e.organization_id AND w.deleted_at IS NULL
                          AND e.event = ANY (w.events)
           WHERE w.task_id IS NULL OR EXISTS (SELECT 1 FROM form_tasks t WHERE t.id = w.task_id AND t.enabled
                                                                           AND t.form_id = e.form_id)
           ON CONFLICT (webhook_id, event_key) DO NOTHING""",
        {"events": json.dumps(events), "window": policy.retry_window},
    )
    return cur.rowcount


def enqueue_for_tasks(conn: psycopg.Connection, events: list[dict],
                      policy: DeliveryPolicy = DeliveryPolicy()) -> dict[str, int]:
    """One delivery per event to the webhook of its `task_id` (a `webhook` task); returns the delivery id of
    each event key, new or queued before (the same key is never delivered twice)."""
    if not events:
        return {}
    rows = conn.execute(
        f"""INSERT INTO webhook_deliveries (webhook_id, event, event_key, body, give_up_at)
           SELECT w.id, e.event, e.event_key, {_BODY_SQL}, now() + %(window)s
           FROM jsonb_to_recordset(%(events)s::jsonb) AS e(task_id bigint, event text, event_key text, data jsonb)
           JOIN webhooks w ON w.task_id = e.task_id AND w.deleted_at IS NULL
           ORDER BY w.id, e.event_key
           ON CONFLICT (webhook_id, event_key) DO UPDATE SET event_key = excluded.event_key
           RETURNING id, event_key""",
        {"events": json.dumps(events, default=json_value), "window": policy.retry_window},
    ).fetchall()
    return {r["event_key"]: r["id"] for r in rows}


def _claim(conn: psycopg.Connection, policy: DeliveryPolicy) -> list[dict]:
    """Take due deliveries (and ones whose worker vanished) for this worker, fairly across endpoints."""
    lease = policy.timeout * math.ceil(policy.batch_size / policy.concurrency) + 60
    with conn.transaction():
        return conn.execute(
            f"""WITH due AS (
                   SELECT d.id,
                          row_number() OVER (PARTITION BY d.webhook_id ORDER BY d.next_attempt_at, d.id) AS nth,
                          w.consecutive_failures >= %(threshold)s AS probing
                   FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                   WHERE ({outbox.due("d")} OR {outbox.lease_expired("d")})
                     AND w.deleted_at IS NULL AND (w.open_until IS NULL OR w.open_until <= now())
               ), picked AS (
                   SELECT d.id FROM webhook_deliveries d JOIN due USING (id)
                   WHERE due.nth <= CASE WHEN due.probing THEN 1 ELSE %(per_endpoint)s END
                     AND ({outbox.due("d")} OR {outbox.lease_expired("d")})
                   ORDER BY d.next_attempt_at, d.id
                   LIMIT %(batch)s
                   FOR UPDATE OF d SKIP LOCKED
               )
               UPDATE webhook_deliveries d
               SET {outbox.claim("d", "%(lease)s")}
               FROM picked, webhooks w
               WHERE d.id = picked.id AND w.id = d.webhook_id
               RETURNING d.id, d.webhook_id, d.event, d.event_key, d.body, d.attempts, w.url, w.secret_sealed""",
            {"threshold": policy.breaker_threshold, "per_endpoint": policy.per_endpoint,
             "batch": policy.batch_size, "lease": lease},
        ).fetchall()


def _outcome(status_code: int | None) -> str:
    if status_code is None or status_code >= 500 or status_code in RETRYABLE_STATUS:
        return "retry"
    return "delivered" if 200 <= status_code < 300 else "failed"


@dataclass
class _Lane:
    """One endpoint's share of a batch: its target checked and its secret unsealed once, its rate limiter
    tokens taken at once (`slots`), and its retryable failures in a row, so a dead endpoint's remaining
    deliveries are handed back rather than each waiting out its timeout."""

    target: Target | None = None
    secret: str | None = None
    refusal: tuple[str, str] | None = None      # (outcome, error) when the endpoint cannot be posted to
    failures_in_a_row: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _lane(row: dict, resolver: Resolver) -> _Lane:
    try:
        return _Lane(target=check_target(row["url"], resolver=resolver), secret=unseal(row["secret_sealed"]))
    except TargetRefused as refused:
        # A name that stopped resolving may come back; one that now points inward is refused for good.
        return _Lane(refusal=("retry" if refused.code == "unresolvable" else "failed", refused.message))
    except SecretUnavailable as err:
        return _Lane(refusal=("failed", str(err)))


def _attempt(row: dict, lane: _Lane, slot: float, policy: DeliveryPolicy,
             session: transport.Session) -> AttemptResult:
    started_at = datetime.now(timezone.utc)
    started = time.monotonic()

    def result(outcome: str, status_code: int | None, error: str | None, retry_after: float | None = None,
               duration_ms: int | None = None) -> AttemptResult:
        return AttemptResult(
            delivery_id=row["id"], webhook_id=row["webhook_id"], attempt=row["attempts"], started_at=started_at,
            duration_ms=int((time.monotonic() - started) * 1000) if duration_ms is None else duration_ms,
            status_code=status_code, error=error, outcome=outcome,
            delay=policy.backoff.delay(row["attempts"], retry_after) if outcome == "retry" else 0.0)

    if lane.refusal is not None:
        return result(lane.refusal[0], None, lane.refusal[1])
    if lane.failures_in_a_row >= policy.breaker_threshold:
        return result(RELEASED, None, None)
    body = row["body"].encode()
    headers = {
        "Content-Type": "application/json", "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(lane.secret, body),
        "Fieldpipe-Event": row["event"], "Fieldpipe-Event-Id": row["event_key"],
        "Fieldpipe-Delivery": str(row["id"]),
    }
    wait = slot - time.monotonic()
    if wait > 0:
        time.sleep(wait)
    answer = session.post(lane.target, body, headers, timeout=policy.timeout, max_body=policy.max_response_bytes)
    outcome = _outcome(answer.status_code)
    with lane.lock:
        lane.failures_in_a_row = lane.failures_in_a_row + 1 if outcome == "retry" else 0
    error = answer.error
    if error is None and outcome != "delivered":
        error = f"HTTP {answer.status_code}: {answer.body_excerpt[:200]}".strip()
    return result(outcome, answer.status_code, error, answer.retry_after, answer.duration_ms)


# A delivery of a batch not attempted because its endpoint failed `breaker_threshold` times in a row just before:
# it goes back to the queue as it was (the attempt it was claimed for is not counted).
RELEASED = "released"

# The batch's results travel as one JSON array (AttemptResult's fields): cheaper to send than eight arrays.
RECORD_SQL = f"""
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(results)s::jsonb)
           AS r(delivery_id bigint, attempt int, outcome text, delay float8, status_code int, error text,
                started_at timestamptz, duration_ms int)
), plan AS (
    SELECT r.*, {outbox.after("r.delay")} AS retry_at FROM r
), updated AS (
    UPDATE webhook_deliveries d SET
        status = CASE WHEN p.outcome = 'delivered' THEN 'delivered'
                      WHEN p.outcome = 'retry' AND p.retry_at <= d.give_up_at THEN 'queued'
                      ELSE 'failed' END,
        next_attempt_at = p.retry_at,
        last_status_code = p.status_code,
        last_error = CASE WHEN p.outcome = 'retry' AND p.retry_at > d.give_up_at
                          THEN p.error || ' (gave up: the retry window ended)' ELSE p.error END,
        delivered_at = CASE WHEN p.outcome = 'delivered' THEN now() END,
        lease_until = NULL, updated_at = now()
      FROM plan p
    -- a worker whose lease ran out and whose row was claimed again does not overwrite the new state
     WHERE d.id = p.delivery_id AND d.status = 'sending' AND d.attempts = p.attempt
    RETURNING d.id, d.status
), attempts AS (
    INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error, outcome)
    SELECT p.delivery_id, p.attempt, p.started_at, p.duration_ms, p.status_code, p.error,
           coalesce(CASE u.status WHEN 'queued' THEN 'retry' ELSE u.status END, p.outcome)
      FROM plan p LEFT JOIN updated u ON u.id = p.delivery_id
    ON CONFLICT DO NOTHING
    RETURNING delivery_id, outcome
)
SELECT delivery_id, outcome FROM attempts
"""


def _record(conn: psycopg.Connection, results: list[AttemptResult]) -> list[str]:
    """Write the attempts and the deliveries' new states (one statement for the batch) and hand back the
    released ones, in one transaction. Returns each attempt's recorded outcome: a retry past the retry
    window is recorded (and counted) failed."""
    attempted = [r for r in results if r.outcome != RELEASED]
    released = [r for r in results if r.outcome == RELEASED]
    with conn.transaction():
        recorded = {row["delivery_id"]: row["outcome"] for row in conn.execute(RECORD_SQL, {
            "results": json.dumps([{**vars(r), "started_at": r.started_at.isoformat()} for r in attempted])})}
        if released:
            conn.execute(
                """UPDATE webhook_deliveries d SET status = 'queued', attempts = d.attempts - 1, lease_until = NULL,
                          updated_at = now()
                     FROM unnest(%s::bigint[], %s::int[]) AS x(id, attempt)
                    WHERE d.id = x.id AND d.status = 'sending' AND d.attempts = x.attempt""",
                ([r.delivery_id for r in released], [r.attempt for r in released]))
    return [recorded.get(r.delivery_id, r.outcome) for r in attempted]


def _record_circuits(conn: psycopg.Connection, results: list[AttemptResult], policy: DeliveryPolicy) -> None:
    """Each endpoint's circuit after the batch: closed by an answer, opened by `breaker_threshold` failures."""
    endpoints: dict[int, tuple[bool, int]] = {}
    for r in results:
        if r.outcome != RELEASED:
            alive, failures = endpoints.get(r.webhook_id, (False, 0))
            endpoints[r.webhook_id] = (alive or r.endpoint_alive, failures + (not r.endpoint_alive))
    with conn.transaction():
        conn.execute(
            """UPDATE webhooks w SET
                   consecutive_failures = CASE WHEN e.alive THEN 0 ELSE w.consecutive_failures + e.failures END,
                   open_until = CASE
                       WHEN e.alive THEN NULL
                       WHEN w.consecutive_failures + e.failures >= %(threshold)s THEN now() + make_interval(secs =>
                           least(%(cap)s, %(base)s * power(2, least(w.consecutive_failures + e.failures - %(threshold)s, 30)))
                           * (0.5 + random() / 2))
                       ELSE w.open_until END
               FROM unnest(%(ids)s::bigint[], %(alive)s::boolean[], %(failures)s::integer[]) AS e(id, alive, failures)
               WHERE w.id = e.id""",
            {"ids": list(endpoints), "alive": [a for a, _ in endpoints.values()],
             "failures": [f for _, f in endpoints.values()], "threshold": policy.breaker_threshold,
             "cap": policy.breaker_cap, "base": policy.breaker_base},
        )


def _expire_held_back(conn: psycopg.Connection) -> int:
    """Deliveries whose endpoint stayed shut past their retry window fail, visibly, instead of waiting forever."""
    with conn.transaction():
        return conn.execute(
            """UPDATE webhook_deliveries d
               SET status = 'failed', updated_at = now(), lease_until = NULL,
                   last_error = coalesce(d.last_error || ' ', '')
                                || '(gave up: the endpoint''s circuit stayed open past the retry window)'
               FROM webhooks w
               WHERE w.id = d.webhook_id AND d.status = 'queued' AND d.give_up_at < now()
                 AND w.open_until > now()""",
        ).rowcount


def _jobs(rows: list[dict], limiter: RateLimiter, resolver: Resolver) -> list[tuple[dict, _Lane, float]]:
    """A batch's deliveries with their endpoint's lane and the moment each may go, endpoints interleaved."""
    by_endpoint: dict[int, list[dict]] = {}
    for row in rows:
        by_endpoint.setdefault(row["webhook_id"], []).append(row)
    jobs = []
    for webhook_id, endpoint_rows in by_endpoint.items():
        lane = _lane(endpoint_rows[0], resolver)
        slots = limiter.named(f"webhook:{webhook_id}").reserve(len(endpoint_rows)) \
            if lane.refusal is None else [0.0] * len(endpoint_rows)
        jobs += [(row, lane, slot) for row, slot in zip(endpoint_rows, slots)]
    return sorted(jobs, key=lambda job: job[2])


def _send(pool: ThreadPoolExecutor, workers: int, jobs: list, attempt: Callable) -> Callable[[], list[AttemptResult]]:
    """Start the jobs on `workers` threads of the pool, each taking the next job when done with one (a Future
    per thread, not per delivery); returns a function that waits for every result, in the jobs' order."""
    results: list[AttemptResult | None] = [None] * len(jobs)
    order = iter(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                index = next(order, None)
            if index is None:
                return
            results[index] = attempt(*jobs[index])

    futures = [pool.submit(work) for _ in range(min(workers, len(jobs)))]

    def wait() -> list[AttemptResult]:
        for future in futures:
            future.result()
        return results  # type: ignore[return-value]

    return wait


def deliver_due(conn: psycopg.Connection, policy: DeliveryPolicy = DeliveryPolicy(),
                resolver: Resolver = system_resolver, max_seconds: float = 300.0) -> dict[str, int]:
    """Deliver what is due, batch after batch, until nothing is due or no new batch may start after
    `max_seconds` (the rest waits for the next run); returns counts.

    Set-based: a batch's deliveries to one endpoint share its checked target, its secret and one reservation
    of rate limiter tokens; they go out `concurrency` at a time over kept-alive connections; the batch's
    outcomes are recorded in one statement. The database work overlaps the requests: while a batch is being
    sent, the one before is recorded and the next one claimed."""
    counts = {"attempted": 0, "delivered": 0, "retry": 0, "failed": 0, "expired": _expire_held_back(conn)}
    started = time.monotonic()

    def record(results: list[AttemptResult]) -> None:
        for outcome in _record(conn, results):
            counts["attempted"] += 1
            counts[outcome] += 1

    with RateLimiter.beside(conn, "webhook", policy.endpoint_rate) as limiter, transport.Session() as session, \
            ThreadPoolExecutor(max_workers=policy.concurrency, thread_name_prefix="webhook") as pool:
        attempt = lambda row, lane, slot: _attempt(row, lane, slot, policy, session)  # noqa: E731
        rows = _claim(conn, policy)
        unrecorded: list[AttemptResult] = []
        while rows:
            sending = _send(pool, policy.concurrency, _jobs(rows, limiter, resolver), attempt)
            record(unrecorded)  # the batch before, while this one is on the wire
            unrecorded = sending()
            # The circuits first, so the next claim leaves an endpoint that just failed alone (its deliveries
            # are still leased: none is taken twice).
            _record_circuits(conn, unrecorded, policy)
            rows = _claim(conn, policy) if time.monotonic() - started < max_seconds else []
        record(unrecorded)
    log.info("webhook deliveries in %.1f s: %d attempted, %d delivered, %d to retry, %d failed, "
             "%d expired behind an open circuit", time.monotonic() - started, counts["attempted"],
             counts["delivered"], counts["retry"], counts["failed"], counts["expired"])
    return counts


_DELIVERY_COLUMNS = """d.id, d.webhook_id, w.url, d.event, d.event_key, d.status, d.attempts, d.last_status_code,
                       d.last_error, d.created_at, d.updated_at, d.next_attempt_at, d.lease_until, d.give_up_at,
                       d.delivered_at"""
DELIVERIES = paging.Keyset("deliveries", int)  # newest first: ORDER BY id DESC


def delivery_body(row: dict, history: list[dict] | None = None) -> dict:
    """The public shape of a delivery; the exact body sent and `history` (its attempts, oldest first) only when
    reading one delivery."""
    body = {name: row[name] for name in ("id", "webhook_id", "url", "event", "event_key", "status", "attempts",
                                         "last_status_code", "last_error", "created_at", "updated_at",
                                         "next_attempt_at", "lease_until", "give_up_at", "delivered_at")}
    if history is not None:
        body["body"] = row["body"]
        body["history"] = [outbox.attempt_body(a) for a in history]
    return body


def list_deliveries(conn: psycopg.Connection, organization_id: int, page: paging.Page,
                    status: str | None = None) -> dict:
    """A page of the organization's deliveries, newest first."""
    if status is not None and status not in STATUSES:
        raise invalid([FieldError("status", "enum", f"must be one of {', '.join(STATUSES)}")])
    rows = conn.execute(
        f"""SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE w.organization_id = %s AND (%s::text IS NULL OR d.status = %s)
              AND (%s::bigint IS NULL OR d.id < %s)
            ORDER BY d.id DESC LIMIT %s""",
        (organization_id, status, status, *(2 * [page.after[0] if page.after else None]), page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=delivery_body)


def get_delivery(conn: psycopg.Connection, organization_id: int, delivery_id: int) -> dict:
    row = conn.execute(
        f"""SELECT {_DELIVERY_COLUMNS}, d.body FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
            WHERE w.organization_id = %s AND d.id = %s""",
        (organization_id, delivery_id),
    ).fetchone()
    if row is None:
        raise not_found(f"delivery {delivery_id}")
    history = conn.execute(
        """SELECT attempt, started_at AS at, outcome, status_code, NULL::text AS error_code, error, duration_ms,
                  NULL::float8 AS retry_after_s
             FROM webhook_attempts WHERE delivery_id = %s ORDER BY attempt""",
        (delivery_id,),
    ).fetchall()
    return delivery_body(row, history)


def requeue_failed(conn: psycopg.Connection, *, organization_id: int | None = None,
                   delivery_ids: list[int] | None = None, replay: outbox.ReplayFilter | None = None,
                   policy: DeliveryPolicy = DeliveryPolicy()) -> list[int]:
    """Put failed deliveries (all of them, the given ids, or those `replay` selects: failed at or after
    `since`, of event `kind`) back in the queue with a fresh retry window, in one statement. Deliveries of
    removed webhooks stay failed. Returns the ids requeued."""
    rows = conn.execute(
        """UPDATE webhook_deliveries d
           SET status = 'queued', next_attempt_at = now(), give_up_at = now() + %(window)s, updated_at = now()
           FROM webhooks w
           WHERE w.id = d.webhook_id AND d.status = 'failed' AND w.deleted_at IS NULL
             AND (%(org)s::bigint IS NULL OR w.organization_id = %(org)s)
             AND (%(ids)s::bigint[] IS NULL OR d.id = ANY (%(ids)s))
             AND (%(since)s::timestamptz IS NULL OR d.updated_at >= %(since)s)
             AND (%(event)s::text IS NULL OR d.event = %(event)s)
           RETURNING d.id""",
        {"window": policy.retry_window, "org": organization_id, "ids": delivery_ids,
         "since": replay.since if replay else None, "event": replay.kind if replay else None},
    ).fetchall()
    return sorted(r["id"] for r in rows)


def retry_delivery(conn: psycopg.Connection, organization_id: int, delivery_id: int) -> dict:
    """Requeue one failed delivery of the organization (404 when not theirs, 409 when not failed)."""
    if not requeue_failed(conn, organization_id=organization_id, delivery_ids=[delivery_id]):
        current = get_delivery(conn, organization_id, delivery_id)
        raise outbox.not_retryable(f"delivery {delivery_id}", current["status"],
                                   "a failed delivery of a webhook that still exists")
    return get_delivery(conn, organization_id, delivery_id)

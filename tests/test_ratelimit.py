"""The one rate limiter (fieldpipe/ratelimit.py): its budget lives in PostgreSQL, so a rate holds across
threads and across processes (Airflow workers), and a Retry-After holds back every caller."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from fieldpipe.db import connect
from fieldpipe.ratelimit import RateLimiter

REPO = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys, time
from fieldpipe.db import connect
from fieldpipe.ratelimit import RateLimiter
url, name, rate, count = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
granted = []
with RateLimiter(lambda: connect(url), name, rate) as limiter:
    limiter.acquire()  # connect before the common start, so both processes compete from the same instant
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())  # the parent sends it once both are ready
    time.sleep(max(0.0, start_at - time.time()))
    for _ in range(count):
        limiter.acquire()
        granted.append(time.time())
print(json.dumps(granted))
"""


def most_in_any_window(times: list[float], window: float) -> int:
    times = sorted(times)
    return max(sum(1 for u in times[i:] if u < t + window) for i, t in enumerate(times))


def limiter(db_url: str, name: str, rate: float, burst: int = 1) -> RateLimiter:
    return RateLimiter(lambda: connect(db_url), name, rate, burst)


def test_two_processes_share_one_budget(clean_db):
    rate, each = 20.0, 20
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, clean_db, "shared-by-two", str(rate), str(each)],
                                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    # A start barrier rather than a guessed delay: both start together however slowly their interpreters came up,
    # so limiters with budgets of their own would overlap fully and fail the checks below.
    assert [w.stdout.readline() for w in workers] == ["ready\n", "ready\n"]
    start_at = time.time() + 0.5
    for w in workers:
        w.stdin.write(f"{start_at}\n")
        w.stdin.flush()
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    by_process = [json.loads(out) for out in outputs]
    granted = sorted(t for times in by_process for t in times)
    assert len(granted) == 2 * each and all(min(times) >= start_at for times in by_process)
    # Two limiters with budgets of their own would finish in about (each - 1) / rate = 0.95 s.
    assert granted[-1] - granted[0] >= (2 * each - 2) / rate
    # In any one second, never more than the rate (plus the one token a full bucket holds) across both.
    assert most_in_any_window(granted, 1.0) <= rate + 1


def test_threads_are_spaced_and_a_deferral_holds_back_everyone(clean_db):
    bucket, granted, lock = limiter(clean_db, "threads", rate=1000.0), [], threading.Lock()

    def take(n):
        for _ in range(n):
            bucket.acquire()
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=take, args=(40,)) for _ in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted[-1] - started >= 319 / 1000  # 320 grants at 1000/s take at least 0.319 s
    # never more than rate x window (+1 for the full bucket, +2 for scheduling jitter)
    assert most_in_any_window(granted, 0.05) <= 50 + 3
    other_caller = limiter(clean_db, "threads", rate=1000.0)
    bucket.defer(0.2)
    before = time.monotonic()
    other_caller.acquire()
    assert time.monotonic() - before >= 0.19
    bucket.close()
    other_caller.close()


def test_a_burst_goes_at_once_then_requests_are_spaced(clean_db):
    with limiter(clean_db, "sheets-like", rate=10.0, burst=2) as bucket:  # 10 a second after two at once
        started = time.monotonic()
        for _ in range(2):
            bucket.acquire()
        assert time.monotonic() - started < 0.09
        for _ in range(3):
            bucket.acquire()
        assert time.monotonic() - started >= 0.28


def test_budgets_are_separate_and_the_named_sibling_shares_the_connection(clean_db):
    with limiter(clean_db, "endpoint:1", rate=1.0) as first:
        second = first.named("endpoint:2")
        started = time.monotonic()
        first.acquire()
        second.acquire()  # another budget: not held back by the first one's token
        assert time.monotonic() - started < 0.5
        first.acquire()  # the same budget again: one second later
        assert time.monotonic() - started >= 0.9
    with connect(clean_db) as conn:
        assert {r["name"] for r in conn.execute("SELECT name FROM rate_limits")} == {"endpoint:1", "endpoint:2"}


def test_a_limiter_beside_a_connection_reaches_the_same_database(conn):
    with RateLimiter.beside(conn, "beside", rate=100.0) as bucket:
        bucket.acquire()
    assert conn.execute("SELECT count(*) AS n FROM rate_limits WHERE name = 'beside'").fetchone()["n"] == 1



def test_a_limiter_beside_a_connection_keeps_its_burst(conn):
    # The Sheets quota is such a limiter: a minute's requests may go at once, then one per interval.
    with RateLimiter.beside(conn, "beside-burst", rate=0.5, burst=3) as bucket:
        started = time.monotonic()
        for _ in range(3):
            bucket.acquire()
        assert time.monotonic() - started < 1.5  # a budget of burst 1 would hold the second back 2 s


def test_a_deferral_holds_a_bursting_budget_back_exactly_as_long_as_asked(clean_db):
    # rate 2/s, burst 5: the next token after `defer(2)` comes 2 s later; not earlier (the burst's tokens
    # are held back too), and not a burst's worth of intervals later.
    with limiter(clean_db, "provider", rate=2.0, burst=5) as deferring, \
            limiter(clean_db, "provider", rate=2.0, burst=5) as other_caller:
        deferring.defer(2.0)
        before = time.monotonic()
        other_caller.acquire()
        assert 1.7 < time.monotonic() - before < 2.9


def test_named_siblings_keep_the_burst_and_share_one_database_connection(clean_db):
    # Webhook delivery takes one budget per endpoint: a hundred endpoints must not open a hundred connections.
    def connections() -> int:
        with connect(clean_db) as probe:
            return probe.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()"
                                 ).fetchone()["n"]

    before = connections()
    with limiter(clean_db, "endpoint:0", rate=0.5, burst=3) as first:
        for sibling in [first.named(f"endpoint:{n}") for n in range(1, 6)]:
            started = time.monotonic()
            for _ in range(3):
                sibling.acquire()
            assert time.monotonic() - started < 1.5  # each sibling's budget holds the same burst of 3
        assert connections() == before + 1

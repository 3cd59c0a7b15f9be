"""Figures `sms_dispatch` and `sms_dispatch_faulty`: the outbox drained through the Twilio stand-in.

The stand-in (tests/fakes/twilio_server.py) runs in its own process, answers after 100 ms like an API across
the internet, and enforces 200 messages a second itself (a token bucket with a burst of 10: every request
above it is a 429 it counts as `over_limit`). The dispatcher is configured at the same 200/s.

- `sms_dispatch`: 50,000 queued messages sent with the real `dispatch` (48 sender threads, one token
  bucket). Value: achieved rate (messages / wall time of the whole run, claims and recording included) as
  a fraction of the configured rate; target >= 0.95, with zero duplicates and zero lost, checked from the
  stand-in's own log (every body is unique) and the outbox.
- `sms_dispatch_faulty`: the stand-in answers 20% of requests 429 or 500 at random (without taking the
  message). Value: the fraction of queued messages the stand-in received exactly once when the outbox is
  drained (target 1.0). 10,000 messages by default (BENCH_SMS_FAULTY_MESSAGES changes it); backoff base
  0.5 s and 12 attempts (production: 30 s and 8), so the run takes about a minute.

Baselines (same run, same stand-in): the seeds' approach, one request after another with no bucket and no
retry (an error is logged and the message is considered done), on 100 messages.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import requests

from bench.common import figure, throwaway_database
from fieldpipe.db import connect
from fieldpipe.orgs import ensure_organization
from fieldpipe.sms.dispatch import dispatch
from fieldpipe.sms.outbox import NewMessage, enqueue, status_counts
from fieldpipe.sms.providers import TwilioProvider
from fieldpipe.config import SmsSettings
from tests.fakes.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

REPO = Path(__file__).resolve().parent.parent
RATE = 200.0
LATENCY_S = 0.1
MESSAGES = 50_000
FAULTY_MESSAGES = int(os.environ.get("BENCH_SMS_FAULTY_MESSAGES", 10_000))
BASELINE_MESSAGES = 100


class StandIn:
    """The Twilio stand-in in a child process (so its work does not share our interpreter lock)."""

    def __init__(self, fault_ratio: float = 0.0):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.twilio_server", "--port", "0", "--rate", str(RATE),
             "--burst", "10", "--latency", str(LATENCY_S), "--fault-ratio", str(fault_ratio)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().split()[0]

    def log(self) -> dict:
        return requests.get(f"{self.base_url}/_fake/log", timeout=60).json()

    def provider(self) -> TwilioProvider:
        return TwilioProvider(self.base_url, ACCOUNT_SID, AUTH_TOKEN, from_number=FROM_NUMBER)

    def __enter__(self) -> "StandIn":
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _queue(url: str, count: int, label: str) -> None:
    with connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE sms_messages, sms_attempts")
        org = ensure_organization(conn, "bench")
        enqueue(conn, [NewMessage(f"announcement:{label}:{i}", "announcement", org, f"+9198{i:08d}",
                                  f"{label} announcement {i}: school reopens Monday") for i in range(count)])


def _settings(**overrides) -> SmsSettings:
    return dataclasses.replace(SmsSettings.from_env("twilio"), rate=RATE, concurrency=48, batch_size=1000,
                               **overrides)


def _seed_style(stand_in: StandIn, count: int) -> tuple[float, int]:
    """(messages a second, messages the stand-in took): sequential, no bucket, errors swallowed."""
    session = requests.Session()
    url = f"{stand_in.base_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    started = time.perf_counter()
    for i in range(count):
        try:
            session.post(url, data={"To": f"+9197{i:08d}", "From": FROM_NUMBER, "Body": f"baseline {i}"},
                         auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)
        except requests.RequestException:
            pass
    elapsed = time.perf_counter() - started
    taken = sum(1 for m in stand_in.log()["messages"] if m["body"].startswith("baseline "))
    return count / elapsed, taken


def _check(url: str, stand_in: StandIn, label: str, count: int) -> dict:
    log = stand_in.log()
    bodies = Counter(m["body"] for m in log["messages"] if m["body"].startswith(f"{label} "))
    with connect(url) as conn:
        statuses = status_counts(conn)
    return {"received": len(bodies), "duplicates": sum(n - 1 for n in bodies.values() if n > 1),
            "lost": count - len(bodies), "exactly_once": sum(1 for n in bodies.values() if n == 1),
            "over_limit_429s": log["over_limit"], "requests": log["requests"], "outbox": statuses}


def run() -> dict:
    with throwaway_database() as url:
        with StandIn() as stand_in:
            baseline_rate, _ = _seed_style(stand_in, BASELINE_MESSAGES)
            _queue(url, MESSAGES, "clean")
            report = dispatch(lambda: connect(url), stand_in.provider(), settings=_settings())
            clean = _check(url, stand_in, "clean", MESSAGES)
        achieved = MESSAGES / report.elapsed_s
        assert clean["duplicates"] == 0 and clean["lost"] == 0, clean

        with StandIn(fault_ratio=0.2) as stand_in:
            _, baseline_taken = _seed_style(stand_in, BASELINE_MESSAGES)
            _queue(url, FAULTY_MESSAGES, "faulty")
            faulty_report = dispatch(lambda: connect(url), stand_in.provider(),
                                     settings=_settings(backoff_base_s=0.5, backoff_cap_s=5.0, max_attempts=12))
            faulty = _check(url, stand_in, "faulty", FAULTY_MESSAGES)

    return {
        "sms_dispatch": figure(achieved / RATE, "fraction of configured rate", baseline_rate / RATE, ">= 0.95",
                               messages=MESSAGES, configured_rate=RATE, achieved_rate=round(achieved, 1),
                               elapsed_s=round(report.elapsed_s, 1), stand_in_latency_s=LATENCY_S,
                               baseline_rate=round(baseline_rate, 1), **clean),
        "sms_dispatch_faulty": figure(faulty["exactly_once"] / FAULTY_MESSAGES, "fraction sent exactly once",
                                      baseline_taken / BASELINE_MESSAGES, "1.0 (every message exactly once)",
                                      messages=FAULTY_MESSAGES, fault_ratio=0.2,
                                      request_rate_ratio=round(faulty_report.rate / RATE, 3),
                                      elapsed_s=round(faulty_report.elapsed_s, 1), **faulty),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2, default=str))

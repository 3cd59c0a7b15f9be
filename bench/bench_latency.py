"""`submit_to_receipt_p95` and `submit_to_flag_sms_p95`: from a 201 to the SMS in var/sms/sent.jsonl, through
the real stack (what `make up` runs: the API under gunicorn, Airflow's scheduler, dag-processor, triggerer and
api-server, the file SMS provider) on a fresh var/ directory.

Phases, each posting demo household surveys at a steady rate (`BENCH_LATENCY_RATE`, 1 a second) for
`BENCH_LATENCY_SECONDS` (180), every 10th one flagged (savings above income, an error rule that notifies the
collector), then waiting until every receipt and flag notice has been sent:

1. events: the triggerer runs, so new responses and queued messages wake their DAGs (the figures);
2. baseline (`BENCH_LATENCY_BASELINE=0` skips 2 and 3): the triggerer stopped, so only the cron schedules and
   the DAGs' own outlets run the pipelines, as before issue 24;
3. restart: posting on with the triggerer still stopped for 60 s, then started again (and posting
   `BENCH_LATENCY_AFTER_RESTART_SECONDS`, 60, more). `lost` counts submissions of any phase whose receipt or
   flag notice never came: it must be 0.

Beside each figure: p50, p95, max, and the DAG runs created per minute during the phase (from Airflow's
metadata database), with the load average. The fixed ports (5000, 8080, 5055, 54329) allow one stack per
machine: set `FIELDPIPE_STACK_LOCK` to a lock file shared with `make up` users and the bench waits its turn.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import random
import statistics
import string
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import psycopg
import requests

from bench.common import figure

RATE = float(os.environ.get("BENCH_LATENCY_RATE", 1.0))
SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", 180))
AFTER_RESTART_SECONDS = float(os.environ.get("BENCH_LATENCY_AFTER_RESTART_SECONDS", 60))
BASELINE = os.environ.get("BENCH_LATENCY_BASELINE", "1") != "0"
FLAG_EVERY = 10
DRAIN_TIMEOUT_S = 600  # the cron-only baseline needs a validate run (every 3 min), then flag_callbacks, then send_sms
WATCHED_DAGS = ("validate_responses", "flag_callbacks", "send_sms")
API = "http://127.0.0.1:5000/api/v1/forms/household-survey/responses"


@dataclass
class Submission:
    submission_id: str
    name: str
    flagged: bool
    submitted_at: float  # when the API answered 201 (ingestion complete)


@dataclass
class Phase:
    name: str
    started: float = 0.0
    ended: float = 0.0
    submissions: list[Submission] = field(default_factory=list)
    receipt_s: list[float] = field(default_factory=list)
    flag_sms_s: list[float] = field(default_factory=list)
    lost: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def summary(self) -> dict:
        minutes = max(self.ended - self.started, 1) / 60
        return {"submissions": len(self.submissions), "lost": self.lost,
                "receipt_s": spread(self.receipt_s), "flag_sms_s": spread(self.flag_sms_s),
                "dag_runs": self.runs, "dag_runs_per_minute": round(sum(self.runs.values()) / minutes, 2),
                "load_average": [round(x, 2) for x in self.load]}


def spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1),
            "p95": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))], 1), "max": round(ordered[-1], 1)}


class SentLog:
    """var/sms/sent.jsonl read as it grows: receipts by respondent name, flag notices by submission id."""

    def __init__(self, path: Path):
        self.path, self.offset = path, 0
        self.receipts: dict[str, float] = {}
        self.flag_notices: dict[str, float] = {}

    def poll(self) -> None:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        complete = data[:data.rfind(b"\n") + 1]
        self.offset += len(complete)
        for line in complete.decode().splitlines():
            message = json.loads(line)
            at = dt.datetime.fromisoformat(message["sent_at"]).timestamp()
            if message["kind"] == "receipt":
                self.receipts.setdefault(message["body"].split(",")[0].removeprefix("Thank you "), at)
            else:  # "Please fix household-survey response <first 8 of the id> (revision 1): ..."
                words = message["body"].split()
                if len(words) > 4 and words[2] == "household-survey":
                    self.flag_notices.setdefault(words[4], at)


def probe_name() -> str:
    return "Probe " + "".join(random.choices(string.ascii_lowercase, k=10))  # no digits: a rule flags those


def post_steadily(session: requests.Session, key: str, phase: Phase, seconds: float) -> None:
    interval, count = 1 / RATE, int(seconds * RATE)
    start = time.monotonic()
    for i in range(count):
        time.sleep(max(0.0, start + i * interval - time.monotonic()))
        flagged = i % FLAG_EVERY == FLAG_EVERY - 1
        sub = Submission(str(uuid.uuid4()), probe_name(), flagged, 0.0)
        body = {"submission_id": sub.submission_id, "submitted_at": "2026-11-29T10:00:00+05:30",
                "collector": {"id": "enum-bench", "phone": "+919812345670"},
                "answers": {"name": sub.name, "phone": f"+9198765{random.randrange(10**5):05d}", "city": "pune",
                            "monthly_income": 20000, "monthly_savings": 30000 if flagged else 5000}}
        resp = session.post(API, json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        resp.raise_for_status()
        sub.submitted_at = time.time()
        phase.submissions.append(sub)


def drain(sent: SentLog, phase: Phase, timeout: float = DRAIN_TIMEOUT_S) -> None:
    """Wait until every receipt and flag notice of the phase was sent (or the timeout); record latencies."""
    deadline = time.monotonic() + timeout
    while True:
        sent.poll()
        missing = [s for s in phase.submissions if s.name not in sent.receipts
                   or (s.flagged and s.submission_id[:8] not in sent.flag_notices)]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    phase.lost = len(missing)
    phase.receipt_s = [sent.receipts[s.name] - s.submitted_at for s in phase.submissions if s.name in sent.receipts]
    phase.flag_sms_s = [sent.flag_notices[s.submission_id[:8]] - s.submitted_at for s in phase.submissions
                        if s.flagged and s.submission_id[:8] in sent.flag_notices]


def dag_runs(metadata_url: str, since: float, until: float) -> dict[str, int]:
    """DAG runs created (queued) between the two times, per DAG (the three event-driven ones, and all)."""
    with psycopg.connect(metadata_url) as conn:
        rows = conn.execute("""SELECT dag_id, count(*) FROM dag_run
                                WHERE queued_at >= to_timestamp(%s) AND queued_at < to_timestamp(%s)
                                GROUP BY dag_id""", (since, until)).fetchall()
    counts = dict(rows)
    return {**{dag: counts.get(dag, 0) for dag in WATCHED_DAGS}, "all_dags": sum(counts.values())}


def run_phase(name: str, stack, session, sent: SentLog, seconds: float, then=None, then_seconds: float = 0) -> Phase:
    """Post for `seconds`; with `then`, call it and post `then_seconds` more; wait for every SMS; count runs."""
    from fieldpipe.dev.airflow_runtime import with_database

    phase = Phase(name, started=time.time())
    print(f"   phase {name}: posting {RATE:g}/s for {seconds + then_seconds:.0f} s", flush=True)
    post_steadily(session, stack.admin_key, phase, seconds)
    if then:
        then()
        post_steadily(session, stack.admin_key, phase, then_seconds)
    drain(sent, phase)
    phase.ended = time.time()
    phase.runs = dag_runs(with_database(stack.app_db_url, "airflow"), phase.started, phase.ended)
    phase.load = os.getloadavg()
    print(f"   phase {name}: {json.dumps(phase.summary())}", flush=True)
    return phase


def wait_for_watchers(stack, starts: int = 1) -> None:
    """Until the triggerer's log shows both watchers listening for the `starts`-th time."""
    log = stack.service("airflow-triggerer").log_path
    deadline = time.monotonic() + 600
    while not all(log.read_text(errors="replace").count(f"listening on fieldpipe_events for {t}") >= starts
                  for t in ("responses", "sms_outbox")):
        if time.monotonic() > deadline:
            raise RuntimeError("the triggerer did not start its watchers; see " + str(log))
        time.sleep(1)


def wait_until_settled(stack, sent: SentLog, session) -> None:
    """After start-up: both watchers listening and one probe's receipt through."""
    wait_for_watchers(stack)
    warmup = Phase("warm-up")
    post_steadily(session, stack.admin_key, warmup, 1 / RATE)
    drain(sent, warmup)
    if warmup.lost:
        raise RuntimeError("the warm-up receipt never arrived")


@contextmanager
def stack_turn() -> Iterator[None]:
    """Hold FIELDPIPE_STACK_LOCK (when set) while the stack runs: one stack per machine."""
    path = os.environ.get("FIELDPIPE_STACK_LOCK")
    if not path:
        yield
        return
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def run() -> dict:
    from fieldpipe.dev.devserver import local_stack

    with tempfile.TemporaryDirectory(prefix="fieldpipe-latency-") as var, stack_turn():
        os.environ["FIELDPIPE_VAR_DIR"] = var
        os.environ.pop("DATABASE_URL", None)
        with local_stack() as stack, requests.Session() as session:
            sent = SentLog(Path(var) / "sms" / "sent.jsonl")
            wait_until_settled(stack, sent, session)
            events = run_phase("events", stack, session, sent, SECONDS)
            phases = [events]
            if BASELINE:
                stack.stop_service("airflow-triggerer")
                phases.append(run_phase("baseline (triggerer stopped)", stack, session, sent, SECONDS))

                def restart() -> None:
                    stack.start_service("airflow-triggerer")
                    wait_for_watchers(stack, starts=2)

                # stopped for a minute more while posting, started again: nothing may be lost
                phases.append(run_phase("triggerer stopped for 60 s, then restarted", stack, session, sent, 60,
                                        then=restart, then_seconds=AFTER_RESTART_SECONDS))
    details = {p.name: p.summary() for p in phases}
    lost = sum(p.lost for p in phases)
    base = phases[1] if BASELINE else None
    return {
        "submit_to_receipt_p95": latency_figure(events.receipt_s, base and base.receipt_s, "<= 10 s", details, lost),
        "submit_to_flag_sms_p95": latency_figure(events.flag_sms_s, base and base.flag_sms_s, "<= 60 s", details, lost),
    }


def latency_figure(values: list[float], baseline: list[float] | None, target: str, details: dict, lost: int) -> dict:
    value = spread(values).get("p95", float("nan"))
    base = spread(baseline).get("p95", 0.0) if baseline else 0.0
    result = figure(value, "s", base, target, higher_is_better=False, lost=lost, phases=details)
    if not baseline:
        result["baseline"] = None  # not measured (BENCH_LATENCY_BASELINE=0)
    return result

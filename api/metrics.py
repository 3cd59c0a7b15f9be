"""`/metrics` in Prometheus' text format, and one JSON access-log line per request.

- `fieldpipe_http_requests_total{method, route, status}` and `fieldpipe_http_request_duration_seconds{method,
  route}` (a histogram); `route` is the URL rule (`/api/v1/forms/<slug>/responses`), never the raw path, so
  the number of series stays bounded.
- `fieldpipe_submissions_total{outcome}`: submissions judged `created` (accepted), `duplicate`, `conflict`,
  `invalid`, through the JSON API (one and batch) and OpenRosa.
- `fieldpipe_backlog_oldest_age_seconds{backlog}` and `fieldpipe_backlog_items{backlog}`: the backlogs the
  operations DAG watches, over every organization, read from the database at each scrape.

Under gunicorn with several workers each worker counts on its own; with PROMETHEUS_MULTIPROC_DIR set (make up
and docker-compose set it) the workers write their counts to files there and any worker answers `/metrics`
with the sum (prometheus_client's multiprocess mode; api/gunicorn_conf.py marks exited workers dead).
"""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from api.errors import request_id
from fieldpipe.config import metrics_multiprocess_dir
from api.spec import operation

access_log = logging.getLogger("fieldpipe.access")

REQUESTS = Counter("fieldpipe_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram("fieldpipe_http_request_duration_seconds", "Time to answer a request", ["method", "route"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SUBMISSIONS = Counter("fieldpipe_submissions", "Submissions judged, by outcome", ["outcome"])
SUBMISSION_OUTCOMES = ("created", "duplicate", "conflict", "invalid")

bp = Blueprint("metrics", __name__)


def count_submissions(outcomes: list[str]) -> None:
    for outcome in outcomes:
        SUBMISSIONS.labels(outcome=outcome).inc()


class BacklogCollector:
    """The backlog gauges, computed at scrape time from the database (the same SQL as the operations DAG)."""

    def __init__(self, pool):
        self.pool = pool

    def collect(self):
        from fieldpipe.operations.backlog import platform_backlogs

        age = GaugeMetricFamily("fieldpipe_backlog_oldest_age_seconds",
                                "Age of the oldest pending item of each backlog (0 when empty)", labels=["backlog"])
        items = GaugeMetricFamily("fieldpipe_backlog_items", "Pending items of each backlog", labels=["backlog"])
        try:
            with self.pool.connection(timeout=2) as conn:
                rows = platform_backlogs(conn)
        except Exception:  # a scrape answers without the gauges rather than failing while the database is away
            return
        for row in rows:
            age.add_metric([row["backlog"]], row["oldest_age_s"])
            items.add_metric([row["backlog"]], row["items"])
        yield age
        yield items


@bp.get("/metrics")
@operation("Prometheus metrics: requests by route and status, latency histograms, submissions by outcome, "
           "backlog gauges", produces="text/plain", tag="service")
def metrics():
    registry = CollectorRegistry()
    if metrics_multiprocess_dir():
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    body = generate_latest(registry)
    body += generate_latest(_backlog_registry(current_app))
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def _backlog_registry(app: Flask) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(BacklogCollector(app.extensions["fieldpipe_pool"]))
    return registry


# The labelled series of each (method, route, status) seen, looked up once: labels() costs more than the count.
_SERIES: dict[tuple[str, str, int], tuple] = {}


def _series(method: str, route: str, status: int) -> tuple:
    found = _SERIES.get((method, route, status))
    if found is None:
        found = _SERIES[method, route, status] = (REQUESTS.labels(method=method, route=route, status=str(status)),
                                                  LATENCY.labels(method=method, route=route))
    return found


def register(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.before_request
    def _start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule is not None else "(unmatched)"
        observe(request.method, route, request.path, response.status_code, elapsed, request_id(),
                response.calculate_content_length(), request.remote_addr)
        return response


def observe(method: str, route: str, path: str, status: int, elapsed: float, request_id: str, size: int | None,
            remote: str | None) -> None:
    """Count a request answered and write its access-log line (for Flask's requests and the answer fast path)."""
    requests, latency = _series(method, route, status)
    requests.inc()
    latency.observe(elapsed)
    access_log.info(json.dumps({
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "request_id": request_id, "method": method,
        "route": route, "path": path, "status": status, "duration_ms": round(elapsed * 1000, 1), "bytes": size,
        "remote": remote}))

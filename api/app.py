"""Application factory: configuration from the environment, one connection pool, blueprints per resource."""

from __future__ import annotations

import logging
import select

import psycopg
from flask import Flask
from psycopg import pq
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api import errors, metrics, spec
from api.answer_fast_path import AnswerFastPath
from api.json import FieldpipeJSONProvider
from fieldpipe.config import Settings

log = logging.getLogger("fieldpipe.api")


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.json = FieldpipeJSONProvider(app)
    settings = Settings.from_env()
    app.config.update(
        DATABASE_URL=settings.database_url,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        POOL_SIZE=settings.pool_size,
        # How long a request waits for a database connection before answering 503 (Retry-After).
        POOL_TIMEOUT=settings.pool_timeout,
    )
    app.config.update(config or {})
    if not app.config["DATABASE_URL"]:
        raise RuntimeError("DATABASE_URL is not set (make up and the tests set it; see README)")
    pool = ConnectionPool(
        app.config["DATABASE_URL"], min_size=1, max_size=app.config["POOL_SIZE"],
        kwargs={"row_factory": dict_row, "autocommit": False}, open=True, name="fieldpipe-api",
        timeout=app.config["POOL_TIMEOUT"],
        # A connection the server dropped (a restart) is replaced before a request gets it, not after it fails.
        check=check_idle_connection,
    )
    app.extensions["fieldpipe_pool"] = pool
    errors.register(app)
    metrics.register(app)

    register_routes(app)
    app.before_request(spec.check_query_of_open_routes)
    app.wsgi_app = AnswerFastPath(app)
    return app


def check_idle_connection(conn: psycopg.Connection) -> None:
    """The pool's check before it lends a connection: raise when the connection is gone. A connection idle in
    the pool receives nothing unless the server is ending it (a restart or a terminated backend sends its
    reason, then closes the socket), so only one with something to read is pinged: a busy API saves a round
    trip per request, which the student answers' one-statement path (issue 25) counts on."""
    if conn.closed or conn.pgconn.status != pq.ConnStatus.OK:
        raise psycopg.OperationalError("the connection is closed")
    readable = select.poll()
    readable.register(conn.pgconn.socket, select.POLLIN)
    if readable.poll(0):
        ConnectionPool.check_connection(conn)


def register_routes(app: Flask) -> None:
    """Every resource's blueprint; also what the OpenAPI document is generated from (spec.document)."""
    from api.routes import (announcements, assessments, docs, enrollment, exams, exports, flags, forms, health, imports,
                            keys, messages, notices, openrosa, pipelines, responses, rules, schools, tasks, webhooks)

    for blueprint in (health.bp, docs.bp, forms.bp, responses.bp, imports.bp, webhooks.bp, schools.bp, assessments.bp,
                      messages.bp, flags.bp, rules.bp, openrosa.bp, enrollment.bp, exports.bp, keys.bp, pipelines.bp,
                      tasks.bp, exams.bp, announcements.bp, notices.bp):
        app.register_blueprint(blueprint)

"""Application factory: configuration from the environment, one connection pool, blueprints per resource."""

from __future__ import annotations

import logging
import os

from flask import Flask
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from api import errors
from api.json import FieldpipeJSONProvider

log = logging.getLogger("fieldpipe.api")


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.json = FieldpipeJSONProvider(app)
    app.config.update(
        DATABASE_URL=os.environ.get("DATABASE_URL"),
        MAX_CONTENT_LENGTH=int(os.environ.get("FIELDPIPE_MAX_BODY_BYTES", 5 * 1024 * 1024)),
        POOL_SIZE=int(os.environ.get("FIELDPIPE_POOL_SIZE", 8)),
    )
    app.config.update(config or {})
    if not app.config["DATABASE_URL"]:
        raise RuntimeError("DATABASE_URL is not set (make up and the tests set it; see README)")
    pool = ConnectionPool(
        app.config["DATABASE_URL"], min_size=1, max_size=app.config["POOL_SIZE"],
        kwargs={"row_factory": dict_row, "autocommit": False}, open=True, name="fieldpipe-api",
    )
    app.extensions["fieldpipe_pool"] = pool
    errors.register(app)

    from api.routes import assessments, docs, flags, forms, health, messages, responses, schools, webhooks

    for blueprint in (health.bp, docs.bp, forms.bp, responses.bp, webhooks.bp, schools.bp, assessments.bp, messages.bp, flags.bp):
        app.register_blueprint(blueprint)
    return app

"""Liveness (the process answers) and readiness (the database answers)."""

from flask import Blueprint, current_app

from api import schemas
from api.spec import operation
from fieldpipe.problems import Problem

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@operation("The process is up", returns=schemas.Status, tag="service")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
@operation("The database is reachable", returns=schemas.Status, problems=("unavailable",), tag="service")
def readyz():
    try:
        with current_app.extensions["fieldpipe_pool"].connection(timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception as err:  # any failure to reach the database means not ready
        raise Problem("unavailable", f"database unreachable: {type(err).__name__}") from None
    return {"status": "ready"}

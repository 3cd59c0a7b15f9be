"""A form's business rules: read and replace (each change a new version), list versions, dry-run a proposal."""

from flask import Blueprint, current_app, request

from api.context import endpoint, json_body
from fieldpipe import paging
from fieldpipe.config import Settings
from fieldpipe.forms import get_form_row
from fieldpipe.rules import dry_run, store

bp = Blueprint("rules", __name__, url_prefix="/api/v1/forms/<slug>/rules")


@bp.get("")
@endpoint(admin=True)
def get_rules(conn, caller, slug):
    return store.current(conn, get_form_row(conn, caller.organization_id, slug))


@bp.put("")
@endpoint(admin=True)
def put_rules(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    body, created = store.save(conn, form, json_body(), store.api_author(conn, caller.key_id), caller.key_id)
    location = f"/api/v1/forms/{slug}/rules/versions/{body['version']}"
    return body, 201 if created else 200, {"Location": location}


@bp.get("/versions")
@endpoint(admin=True)
def list_versions(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    return store.list_versions(conn, form, paging.from_query(request.args, store.VERSIONS))


@bp.get("/versions/<version>")
@endpoint(admin=True)
def get_version(conn, caller, slug, version):
    return store.get_version(conn, get_form_row(conn, caller.organization_id, slug), version)


@bp.post("/dry-run")
@endpoint(admin=True)
def post_dry_run(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    document = json_body()
    latest = dry_run.parse_latest(request.args.get("latest"))
    if dry_run.responses_to_evaluate(conn, form["id"], latest) <= Settings.from_env().rules_dry_run_sync_limit:
        return dry_run.dry_run(conn, form, document, latest)
    job = dry_run.start_job(conn, form, document, latest, store.api_author(conn, caller.key_id),
                            current_app.config["DATABASE_URL"])
    return job, 202, {"Location": job["poll"]}


@bp.get("/dry-runs/<job_id>")
@endpoint(admin=True)
def get_dry_run(conn, caller, slug, job_id):
    return dry_run.get_job(conn, get_form_row(conn, caller.organization_id, slug), job_id)

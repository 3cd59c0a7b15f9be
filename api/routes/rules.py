"""A form's business rules: read and replace (each change a new version), list versions, dry-run a proposal."""

from flask import Blueprint, current_app, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.config import Settings
from fieldpipe.forms import get_form_row
from fieldpipe.rules import dry_run, store

bp = Blueprint("rules", __name__, url_prefix="/api/v1/forms/<slug>/rules")

VERSION_OK = {"description": "Unchanged: the document equals the version in force",
              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RulesVersion"}}}}
JOB_ACCEPTED = {"description": "Accepted as a job; poll the Location",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DryRunJob"}}}}


@bp.get("")
@operation("The form's rules in force (version null when it has none)", returns=schemas.RulesVersion, tag="rules")
@endpoint(admin=True)
def get_rules(conn, caller, slug):
    return store.current(conn, get_form_row(conn, caller.organization_id, slug))


@bp.put("")
@operation("Replace the form's rules: checked against its questions (422 lists every problem with its rule id; "
           "nothing is stored), then saved as a new version (201). The same document again changes nothing (200)",
           description="The one `PUT` of the API: a rules document is replaced whole and versioned, never patched.",
           body=schemas.RulesDocument, returns=schemas.RulesVersion, status=201, extra_responses={"200": VERSION_OK},
           examples={"households": examples.RULES}, tag="rules",
           headers={"Location": "The new version's URL"})
@endpoint(admin=True)
def put_rules(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    body, created = store.save(conn, form, json_body(), store.api_author(conn, caller.key_id), caller.key_id)
    location = f"/api/v1/forms/{slug}/rules/versions/{body['version']}"
    return body, 201 if created else 200, {"Location": location}


@bp.get("/versions")
@operation("The form's rules versions, newest first, with who saved each and when",
           listing=schemas.RulesVersionSummary, tag="rules")
@endpoint(admin=True)
def list_versions(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    return store.list_versions(conn, form, paging.from_query(request.args, store.VERSIONS))


@bp.get("/versions/<version>")
@operation("One rules version's document", returns=schemas.RulesVersion, tag="rules")
@endpoint(admin=True)
def get_version(conn, caller, slug, version):
    return store.get_version(conn, get_form_row(conn, caller.organization_id, slug), version)


@bp.post("/dry-run")
@operation("Evaluate a proposed rules document against the form's stored responses (or the latest N) without "
           "writing flags", description="Over FIELDPIPE_RULES_DRY_RUN_SYNC_LIMIT responses (default 100,000) it "
           "runs as a job: 202 with a link to poll.", body=schemas.RulesDocument, returns=schemas.DryRunResult,
           query=(Query("latest", {"type": "integer", "minimum": 1, "maximum": dry_run.MAX_LATEST},
                        "Only the latest N responses received"),),
           extra_responses={"202": JOB_ACCEPTED}, examples={"households": examples.RULES}, tag="rules")
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
@operation("A dry run job: queued, running, done (with its result) or failed (with the error)",
           returns=schemas.DryRunJob, tag="rules")
@endpoint(admin=True)
def get_dry_run(conn, caller, slug, job_id):
    return dry_run.get_job(conn, get_form_row(conn, caller.organization_id, slug), job_id)

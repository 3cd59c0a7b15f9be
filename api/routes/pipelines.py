"""Forms a pipeline could not process on its last attempt, with the reason (see fieldpipe/pipelines/failures.py)."""

from flask import Blueprint, request

from api import schemas
from api.context import endpoint
from api.spec import operation
from fieldpipe import paging
from fieldpipe.pipelines import failures

bp = Blueprint("pipelines", __name__, url_prefix="/api/v1")


@bp.get("/pipeline-failures")
@operation("Forms a pipeline (validate_responses, export_sheets) could not process on its last attempt, with the "
           "reason; each is skipped and tried again by the next run while the other forms proceed. Ordered by "
           "pipeline, then form", listing=schemas.PipelineFailure)
@endpoint()
def list_pipeline_failures(conn, caller):
    return failures.list_failures(conn, caller.organization_id, paging.from_query(request.args, failures.FAILURES))

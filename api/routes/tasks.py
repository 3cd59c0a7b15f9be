"""A form's post-submission tasks (admin): install, configure, remove; their runs; replay history through one."""

from flask import Blueprint, request

from api import examples, schemas
from api.context import endpoint, json_body
from api.spec import Query, operation
from fieldpipe import paging
from fieldpipe.forms import get_form_row
from fieldpipe.tasks import ledger, replay, store

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/forms/<slug>/tasks")


@bp.post("")
@operation("Install a task on the form: a kind (built in, or added by a plugin) with a configuration checked "
           "against the kind's JSON Schema and the form's questions (422 lists every problem). An async task runs "
           "on responses stored from now on; replay sends earlier ones", body=schemas.TaskInput,
           returns=schemas.TaskCreated, status=201, problems=("unavailable",),
           examples={"webhook": examples.TASK, "sheet": examples.SHEET_TASK},
           headers={"Location": "The new task's URL"})
@endpoint(admin=True)
def create_task(conn, caller, slug):
    task = store.create_task(conn, get_form_row(conn, caller.organization_id, slug), json_body())
    return task, 201, {"Location": f"/api/v1/forms/{slug}/tasks/{task['id']}"}


@bp.get("")
@operation("The form's tasks, oldest first", listing=schemas.Task)
@endpoint(admin=True)
def list_tasks(conn, caller, slug):
    form = get_form_row(conn, caller.organization_id, slug)
    return store.list_tasks(conn, form, paging.from_query(request.args, store.TASKS))


@bp.get("/<int:task_id>")
@operation("One task", returns=schemas.Task)
@endpoint(admin=True)
def get_task(conn, caller, slug, task_id):
    return store.get_task(conn, get_form_row(conn, caller.organization_id, slug), task_id)


@bp.patch("/<int:task_id>")
@operation("Change a task's configuration (replaced whole) or enable/disable it; its kind and mode never change",
           body=schemas.TaskPatch, returns=schemas.Task, examples={"disable": examples.TASK_PATCH})
@endpoint(admin=True)
def update_task(conn, caller, slug, task_id):
    return store.update_task(conn, get_form_row(conn, caller.organization_id, slug), task_id, json_body())


@bp.delete("/<int:task_id>")
@operation("Remove a task with its runs (disable it instead to keep them)", status=204)
@endpoint(admin=True)
def delete_task(conn, caller, slug, task_id):
    store.delete_task(conn, get_form_row(conn, caller.organization_id, slug), task_id)
    return "", 204


@bp.get("/<int:task_id>/runs")
@operation("The task's runs (one per response revision), oldest first, with each outcome or error",
           listing=schemas.TaskRun, query=(Query("status", {"enum": list(ledger.STATUSES)}, "Only runs in this state"),))
@endpoint(admin=True)
def list_runs(conn, caller, slug, task_id):
    form = get_form_row(conn, caller.organization_id, slug)
    store.task_row(conn, form, task_id)
    return ledger.list_runs(conn, task_id, paging.from_query(request.args, ledger.RUNS), request.args.get("status"))


@bp.post("/<int:task_id>/replay")
@operation("Send the responses received in [from, to) through an async task, in the background (the run_tasks "
           "pipeline); a response the task already ran for is not sent again. Poll the Location for progress",
           body=schemas.ReplayInput, returns=schemas.Replay, status=202, examples={"one day": examples.REPLAY},
           headers={"Location": "The replay's URL, with its progress"})
@endpoint(admin=True)
def request_replay(conn, caller, slug, task_id):
    body = replay.request_replay(conn, get_form_row(conn, caller.organization_id, slug), task_id, json_body())
    return body, 202, {"Location": f"/api/v1/forms/{slug}/tasks/{task_id}/replays/{body['id']}"}


@bp.get("/<int:task_id>/replays/<int:replay_id>")
@operation("A replay and its progress", returns=schemas.Replay)
@endpoint(admin=True)
def get_replay(conn, caller, slug, task_id, replay_id):
    return replay.get_replay(conn, get_form_row(conn, caller.organization_id, slug), task_id, replay_id)

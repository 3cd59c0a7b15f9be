"""The contract of a task kind, and the registry of installed kinds (entry point group `fieldpipe.tasks`).

A kind is a class, registered under its name in the entry point group `fieldpipe.tasks` of any installed
distribution (fieldpipe registers its own kinds the same way, in pyproject.toml):

    [project.entry-points."fieldpipe.tasks"]
    my_kind = "my_package.module:MyKind"

It declares `mode` ("sync" or "async"), `config_schema` (a JSON Schema the task's configuration must meet)
and one of:

- `run_sync(self, submission: dict) -> Any`: runs after a submission is stored, within the submission's
  time budget; what it returns (JSON) is part of the submit answer. An exception or an overrun never fails
  the submission: the answer says the task did not run.
- `run_async(self, batch: Batch) -> dict[int, Any]`: runs in Airflow on a set of runs of every form at
  once. It answers, per run id, its outcome (anything JSON) or a `RunFailed`; a run it leaves out or an
  exception from the batch counts as a failure, recorded with the error and retried.

Optionally `events(config)` (the response events the task runs on: `response.created` and/or
`response.updated`), `check(config, form)` (problems a schema cannot see, such as a question the form lacks,
as FieldErrors; `form` is {slug, questions, xform}), `one_per_form = True` (a form has one task of it), and
hooks for a kind that owns something beside its tasks, called in the transaction that saves the task:
`created(conn, task)` (may return members of the creation answer), `updated(conn, task)` (its configuration
was replaced), `removed(conn, task)`; `task` is the stored row with the form's row under `form`.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import psycopg

from fieldpipe.config import REPO_ROOT
from fieldpipe.problems import FieldError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fieldpipe.tasks"
MODES = ("sync", "async")
RESPONSE_EVENTS = ("response.created", "response.updated")


class RunFailed(Exception):
    """One run's failure, returned (not raised) by `run_async` for that run; `retry=False` fails it for good."""

    def __init__(self, error: str, retry: bool = True):
        super().__init__(error)
        self.retry = retry


@dataclass
class Batch:
    """Runs of one kind, across tasks and forms. `items` are dicts: run_id, task_id, organization_id, form,
    config, submission_id, response_id, revision, event, submitted_at, received_at, collector, answers.
    `conn` is the pipeline's database connection (in a transaction the outcomes are recorded after)."""

    kind: str
    items: list[dict]
    conn: psycopg.Connection | None = None
    context: dict = field(default_factory=dict)  # what the adapter passes (e.g. the Sheets connection)

    def by_task(self) -> dict[int, list[dict]]:
        groups: dict[int, list[dict]] = {}
        for item in self.items:
            groups.setdefault(item["task_id"], []).append(item)
        return groups


class TaskKind:
    """Base class for kinds (optional: any class with the same attributes works)."""

    mode: str = "async"
    config_schema: dict = {"type": "object"}
    description: str = ""

    def events(self, config: dict) -> tuple[str, ...]:
        return RESPONSE_EVENTS

    def check(self, config: dict, form: dict) -> list[FieldError]:
        return []

    # Hooks for kinds that own something beside the task (a webhook endpoint, rules versions).
    def created(self, conn: psycopg.Connection, task: dict) -> dict:
        """Extra members of the creation answer (shown once, e.g. a secret)."""
        return {}

    def updated(self, conn: psycopg.Connection, task: dict) -> None:
        """The task's configuration was replaced."""

    def removed(self, conn: psycopg.Connection, task: dict) -> None:
        """The task is being removed."""


class UnknownKind(LookupError):
    pass


def _entry_points() -> list[EntryPoint]:
    found = list(entry_points(group=ENTRY_POINT_GROUP))
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.exists():
        # An editable install made before fieldpipe declared (some of) its own kinds: read that same declaration.
        declared = tomllib.loads(pyproject.read_text())["project"].get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
        names = {ep.name for ep in found}
        found += [EntryPoint(name, value, ENTRY_POINT_GROUP) for name, value in declared.items() if name not in names]
    return found


@lru_cache(maxsize=1)
def installed_kinds() -> dict[str, Any]:
    """Every installed kind by name, instantiated once. A kind that cannot be loaded is logged and left out."""
    kinds: dict[str, Any] = {}
    for ep in _entry_points():
        try:
            kind = ep.load()()
        except Exception as err:  # a broken plugin must not take the others down
            log.error("task kind %r (%s) cannot be loaded: %s: %s", ep.name, ep.value, type(err).__name__, err)
            continue
        if getattr(kind, "mode", None) not in MODES or not isinstance(getattr(kind, "config_schema", None), dict):
            log.error("task kind %r (%s) declares no valid mode and config_schema; left out", ep.name, ep.value)
            continue
        kinds.setdefault(ep.name, kind)
    return kinds


def get_kind(name: str) -> Any:
    try:
        return installed_kinds()[name]
    except KeyError:
        raise UnknownKind(name) from None


def kind_events(kind: Any, config: dict) -> list[str]:
    events = kind.events(config) if hasattr(kind, "events") else RESPONSE_EVENTS
    return [e for e in RESPONSE_EVENTS if e in events]

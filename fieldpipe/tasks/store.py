"""A form's task list: create, list, read, change, remove; a configuration is checked against its kind's schema.

A task's mode is its kind's (never chosen per task). A configuration that fails the kind's JSON Schema, names
an unknown kind or a question the form lacks is a 422 listing every problem. A form has at most one task of
a kind marked `one_per_form` (a receipt: one per response, whatever the number of tasks).
"""

from __future__ import annotations

from typing import Any

import jsonschema
import psycopg
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.problems import FieldError, invalid, not_found
from fieldpipe.tasks.kinds import get_kind, installed_kinds, kind_events

TASKS = paging.Keyset("tasks", int)
CREATE_FIELDS = {"kind", "config", "enabled", "mode"}
PATCH_FIELDS = {"config", "enabled"}
_COLUMNS = "t.id, t.kind, t.mode, t.config, t.events, t.enabled, t.created_at, t.updated_at, t.form_id"


def task_body(row: dict) -> dict:
    return {"id": row["id"], "kind": row["kind"], "mode": row["mode"], "config": row["config"],
            "events": row["events"], "enabled": row["enabled"], "created_at": row["created_at"],
            "updated_at": row["updated_at"]}


def form_context(form: dict) -> dict:
    """What a kind's `check` sees of the form."""
    return {"slug": form["slug"], "questions": form["questions"], "xform": bool(form.get("xform_id"))}


def _schema_errors(schema: dict, config: Any) -> list[FieldError]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    errors = []
    for error in sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path]):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        errors.append(FieldError(f"config{where}", error.validator, error.message))
    return errors


def check_config(kind: Any, config: Any, form: dict) -> list[FieldError]:
    """Every problem of a configuration for this kind on this form (schema first, then the kind's own check)."""
    if not isinstance(config, dict):
        return [FieldError("config", "type", "must be an object")]
    errors = _schema_errors(kind.config_schema, config)
    if not errors and hasattr(kind, "check"):
        errors = list(kind.check(config, form_context(form)))
    return errors


def _check_fields(payload: Any, allowed: set[str]) -> list[FieldError]:
    if not isinstance(payload, dict):
        raise invalid([FieldError("", "type", "must be a JSON object")])
    errors = [FieldError(extra, "unknown_field", f"is not a task field; known: {', '.join(sorted(allowed))}")
              for extra in sorted(set(payload) - allowed)]
    if "enabled" in payload and not isinstance(payload["enabled"], bool):
        errors.append(FieldError("enabled", "type", "must be true or false"))
    return errors


def _one_per_form_error(conn: psycopg.Connection, form: dict, kind_name: str, kind: Any) -> list[FieldError]:
    if not getattr(kind, "one_per_form", False):
        return []
    taken = conn.execute("SELECT id FROM form_tasks WHERE form_id = %s AND kind = %s",
                         (form["id"], kind_name)).fetchone()
    return [FieldError("kind", "one_per_form", f"this form has a {kind_name} task already (id {taken['id']}); "
                                               "change that one")] if taken else []


def create_task(conn: psycopg.Connection, form: dict, payload: Any) -> dict:
    """Store a task for the form; the answer may carry what is shown only once (a webhook's secret)."""
    errors = _check_fields(payload, CREATE_FIELDS)
    kind_name = payload.get("kind")
    kind = None
    if not isinstance(kind_name, str) or not kind_name:
        errors.append(FieldError("kind", "required", "must name a task kind"))
    elif kind_name not in installed_kinds():
        errors.append(FieldError("kind", "unknown_kind", f"no task kind {kind_name!r} is installed; "
                                                         f"known: {', '.join(sorted(installed_kinds()))}"))
    else:
        kind = get_kind(kind_name)
        if "mode" in payload and payload["mode"] != kind.mode:
            errors.append(FieldError("mode", "fixed_by_kind", f"a {kind_name} task is {kind.mode}"))
        config = payload.get("config", {})
        errors += check_config(kind, config, form)
        errors += _one_per_form_error(conn, form, kind_name, kind)
    if errors:
        raise invalid(errors)
    config = payload.get("config", {})
    row = conn.execute(
        f"""INSERT INTO form_tasks AS t (organization_id, form_id, kind, mode, config, events, enabled)
            VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}""",
        (form["organization_id"], form["id"], kind_name, kind.mode, Jsonb(config),
         kind_events(kind, config) if kind.mode == "async" else [], payload.get("enabled", True)),
    ).fetchone()
    if not hasattr(kind, "created"):
        return task_body(row)
    extra = kind.created(conn, _hooked(row, form))
    return {**get_task(conn, form, row["id"]), **extra}  # as the hook left it


def list_tasks(conn: psycopg.Connection, form: dict, page: paging.Page) -> dict:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM form_tasks t WHERE t.form_id = %s AND t.id > %s ORDER BY t.id LIMIT %s",
        (form["id"], page.after[0] if page.after else 0, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["id"],), shape=task_body)


def task_row(conn: psycopg.Connection, form: dict, task_id: int, lock: bool = False) -> dict:
    """The form's task (404 for another form's or organization's)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM form_tasks t WHERE t.form_id = %s AND t.id = %s {'FOR UPDATE' if lock else ''}",
        (form["id"], task_id),
    ).fetchone()
    if row is None:
        raise not_found(f"task {task_id}")
    return row


def get_task(conn: psycopg.Connection, form: dict, task_id: int) -> dict:
    return task_body(task_row(conn, form, task_id))


def update_task(conn: psycopg.Connection, form: dict, task_id: int, payload: Any) -> dict:
    """Members sent replace the stored ones (`config` as a whole); the kind and mode never change."""
    row = task_row(conn, form, task_id, lock=True)
    errors = _check_fields(payload, PATCH_FIELDS | {"kind", "mode"})
    for fixed in ("kind", "mode"):
        if fixed in payload and payload[fixed] != row[fixed]:
            errors.append(FieldError(fixed, "immutable", f"a task's {fixed} cannot change; add a new task"))
    try:
        kind = get_kind(row["kind"])
    except LookupError:
        kind = None
        if "config" in payload:
            errors.append(FieldError("kind", "unknown_kind", f"task kind {row['kind']!r} is no longer installed"))
    config = payload.get("config", row["config"])
    if kind is not None and "config" in payload:
        errors += check_config(kind, config, form)
    if errors:
        raise invalid(errors)
    events = kind_events(kind, config) if kind is not None and row["mode"] == "async" else row["events"]
    updated = conn.execute(
        f"""UPDATE form_tasks t SET config = %s, events = %s, enabled = %s, updated_at = now()
             WHERE t.id = %s RETURNING {_COLUMNS}""",
        (Jsonb(config), events, payload.get("enabled", row["enabled"]), task_id),
    ).fetchone()
    if kind is not None and hasattr(kind, "updated") and "config" in payload:
        kind.updated(conn, _hooked(updated, form))
        return get_task(conn, form, task_id)  # as the hook left it
    return task_body(updated)


def delete_task(conn: psycopg.Connection, form: dict, task_id: int) -> None:
    """Remove the task with its ledger (disable it instead to keep the history)."""
    row = task_row(conn, form, task_id)
    kind = installed_kinds().get(row["kind"])
    if kind is not None and hasattr(kind, "removed"):
        kind.removed(conn, _hooked(row, form))
    conn.execute("DELETE FROM form_tasks WHERE id = %s", (task_id,))


def _hooked(row: dict, form: dict) -> dict:
    """What a kind's hooks get: the stored task with its organization and form."""
    return {**row, "organization_id": form["organization_id"], "form": form}


def enabled_tasks(conn: psycopg.Connection, form_id: int, mode: str) -> list[dict]:
    return conn.execute(
        f"SELECT {_COLUMNS} FROM form_tasks t WHERE t.form_id = %s AND t.mode = %s AND t.enabled ORDER BY t.id",
        (form_id, mode),
    ).fetchall()


def split_settings(settings: dict) -> tuple[dict, dict]:
    """(the settings a form stores, the ones that are tasks now: `sms_receipt` and `sheet`)."""
    moved = {k: settings[k] for k, _ in SETTINGS_KINDS if k in settings}
    return {k: v for k, v in settings.items() if k not in moved}, moved


def adopt_settings(conn: psycopg.Connection, form: dict, moved: dict, replaced: bool) -> None:
    """The form settings `sms_receipt` and `sheet`, kept as a shorthand, write the form's task of that kind:
    created, or its configuration replaced (and enabled). When the settings were `replaced` as a whole, a
    shorthand left out disables its task, as leaving the setting out used to stop it. The settings were
    checked by `forms.check_settings`, with the same rules as the kinds' own checks."""
    for setting, kind_name in SETTINGS_KINDS:
        if setting not in moved:
            if replaced:
                conn.execute("UPDATE form_tasks SET enabled = false, updated_at = now() "
                             "WHERE form_id = %s AND kind = %s AND enabled", (form["id"], kind_name))
            continue
        config, kind = moved[setting], get_kind(kind_name)
        conn.execute(
            """WITH existing AS (
                   UPDATE form_tasks SET config = %(config)s, events = %(events)s, enabled = true, updated_at = now()
                    WHERE id = (SELECT min(id) FROM form_tasks WHERE form_id = %(form)s AND kind = %(kind)s)
                   RETURNING id)
               INSERT INTO form_tasks (organization_id, form_id, kind, mode, config, events)
               SELECT %(org)s, %(form)s, %(kind)s, %(mode)s, %(config)s, %(events)s
                WHERE NOT EXISTS (SELECT 1 FROM existing)""",
            {"config": Jsonb(config), "events": kind_events(kind, config), "form": form["id"], "kind": kind_name,
             "org": form["organization_id"], "mode": kind.mode},
        )


# What used to be a form setting and the task kind it is now (migration 0017 moved the stored ones).
SETTINGS_KINDS = (("sms_receipt", "sms_receipt"), ("sheet", "sheet_export"))

# A form's enabled receipt and sheet tasks shown as the settings they replace (`f` is the form), so a form
# reads as it did before tasks: `settings` = stored settings || this.
TASKS_AS_SETTINGS = """coalesce((SELECT jsonb_object_agg(CASE t.kind WHEN 'sheet_export' THEN 'sheet' ELSE t.kind END,
                                          t.config)
                       FROM (SELECT DISTINCT ON (kind) kind, config FROM form_tasks
                              WHERE form_id = f.id AND kind IN ('sms_receipt', 'sheet_export') AND enabled
                              ORDER BY kind, id) t), '{}'::jsonb)"""


def tasks_as_settings(conn: psycopg.Connection, form_id: int) -> dict:
    return conn.execute(f"SELECT {TASKS_AS_SETTINGS} AS s FROM forms f WHERE f.id = %s", (form_id,)).fetchone()["s"]

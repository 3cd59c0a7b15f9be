"""Rules stored per form of an organization: every change is a new version (who, when), checked when saved.

A document is the JSON form of a rules file: `{"rules": [...], "expectations": [...]}`. Saving checks it
against the form's current questions exactly as `fieldpipe rules check` does; a document with problems
is refused (422 listing each problem with its rule id) and nothing is stored. Saving a document equal
to the version in force stores nothing new. `forms.rules_version` points at the version in force, so
every request that reads the form knows which checked rules apply (`cached_ruleset`).
"""

from __future__ import annotations

import getpass
import re
import threading
from typing import Any

import psycopg
import yaml
from psycopg.types.json import Jsonb

from fieldpipe import paging
from fieldpipe.problems import FieldError, Problem, invalid, not_found
from fieldpipe.rules.loader import RuleProblem, RuleSet, RulesFileError, json_document, load_document

# Fields GET answers beside the document; a PUT may send them back unchanged, and they are ignored.
READ_ONLY_FIELDS = ("version", "created_at", "created_by")
VERSIONS = paging.Keyset("rules-versions", int)  # newest first: ORDER BY version DESC


class RuleFieldError(FieldError):
    """A problem of a rules document, with the id of the rule it is about (None for the document itself)."""

    def __init__(self, field: str, message: str, rule_id: str | None, code: str = "invalid_rule"):
        super().__init__(field, code, message)
        self.rule_id = rule_id

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "rule_id": self.rule_id}


# How the loader words a reference to an answer the form does not have (in an expression, a message, a column).
_UNKNOWN_QUESTION = re.compile(r"unknown answer key|must be an answer key of the form")


def field_errors(err: RulesFileError, prefix: str = "", name_questions: bool = False) -> list[RuleFieldError]:
    """Each problem of the document as a field error at `prefix` + where it is (`rules[2]`), code `invalid_rule`;
    with `name_questions`, a problem naming a question the form lacks has the code `unknown_question` (as every
    task configuration words it; `PUT .../rules` keeps one code)."""
    return [RuleFieldError(".".join(filter(None, (prefix, getattr(p, "where", "")))), str(p),
                           getattr(p, "rule_id", None),
                           "unknown_question" if name_questions and _UNKNOWN_QUESTION.search(p) else "invalid_rule")
            for p in err.problems]


def rules_problem(err: RulesFileError) -> Problem:
    errors = field_errors(err)
    return invalid(errors, f"the rules have {len(errors)} problem(s); nothing was saved")


def form_label(form: dict) -> str:
    return f"{form['organization']}/{form['slug']} rules" if form.get("organization") else f"form {form['slug']!r} rules"


def check(document: Any, form: dict, source: str | None = None) -> tuple[dict, RuleSet]:
    """(the document as stored, its checked rules) or RulesFileError; read-only fields and `form` are dropped."""
    if isinstance(document, dict):
        document = {k: v for k, v in document.items() if k not in READ_ONLY_FIELDS}
    source = source or form_label(form)
    if not isinstance(document, dict):
        raise RulesFileError(source, [RuleProblem("must be a mapping with 'rules' and/or 'expectations'")])
    stored = json_document(document, source)
    ruleset = load_document(stored, form["questions"], source, form_slug=form["slug"])
    stored.pop("form", None)
    return stored, ruleset


def api_author(conn: psycopg.Connection, key_id: int) -> str:
    row = conn.execute("SELECT display_prefix, role, label FROM api_keys WHERE id = %s", (key_id,)).fetchone()
    label = f", {row['label']}" if row["label"] else ""
    return f"api key {row['display_prefix']}… ({row['role']}{label})"


def cli_author() -> str:
    return f"cli:{getpass.getuser()}"


def save(conn: psycopg.Connection, form: dict, document: Any, author: str,
         api_key_id: int | None = None, source: str | None = None) -> tuple[dict, bool]:
    """Check and store the document as the form's new rules version; (the version in force, whether it is new).

    Raises a 422 Problem listing every problem (nothing stored). Runs inside the caller's transaction."""
    try:
        stored, _ = check(document, form, source)
    except RulesFileError as err:
        raise rules_problem(err) from None
    # Lock the form: two saves at once get consecutive versions, never the same one.
    version = conn.execute("SELECT rules_version FROM forms WHERE id = %s FOR UPDATE", (form["id"],)).fetchone()["rules_version"]
    if version is not None:
        in_force = _version_row(conn, form["id"], version)
        if in_force["document"] == stored:
            return version_body(in_force), False
    row = conn.execute(
        """INSERT INTO rules_versions (form_id, version, document, created_by, api_key_id)
           VALUES (%s, coalesce(%s, 0) + 1, %s, %s, %s) RETURNING *""",
        (form["id"], version, Jsonb(stored), author, api_key_id),
    ).fetchone()
    conn.execute("UPDATE forms SET rules_version = %s WHERE id = %s", (row["version"], form["id"]))
    _write_task(conn, form["id"], stored)
    return version_body(row), True


# The form's `rules` task (docs/tasks.md) carries the document in force as its configuration: saving a version
# writes it (installing the task, enabled, on a form that has none; a disabled one stays disabled).
RULES_KIND = "rules"
# SQL: the form `f` has its rules task switched off (no warnings at submission, no validation).
RULES_TASK_DISABLED = f"""EXISTS (SELECT 1 FROM form_tasks rt WHERE rt.form_id = f.id AND rt.kind = '{RULES_KIND}'
                                                           AND NOT rt.enabled)"""


def _write_task(conn: psycopg.Connection, form_id: int, document: dict) -> None:
    conn.execute(
        """WITH existing AS (
               UPDATE form_tasks SET config = %(doc)s, updated_at = now()
                WHERE form_id = %(form)s AND kind = %(kind)s RETURNING id)
           INSERT INTO form_tasks (organization_id, form_id, kind, mode, config)
           SELECT organization_id, id, %(kind)s, 'sync', %(doc)s FROM forms
            WHERE id = %(form)s AND NOT EXISTS (SELECT 1 FROM existing)""",
        {"doc": Jsonb(document), "form": form_id, "kind": RULES_KIND})


def remove(conn: psycopg.Connection, form_id: int) -> None:
    """The form has no rules in force any more (its rules task was removed): no warnings; the next validation
    run closes its open flags (`rule_removed`). Its versions stay listed; saving one again brings it back."""
    conn.execute("UPDATE forms SET rules_version = NULL WHERE id = %s", (form_id,))


def applies(conn: psycopg.Connection, form: dict) -> bool:
    """Whether the form's rules are in force: it has some, and its rules task is not disabled."""
    return form.get("rules_version") is not None and conn.execute(
        f"SELECT NOT {RULES_TASK_DISABLED} AS on FROM forms f WHERE f.id = %s", (form["id"],)).fetchone()["on"]


def _version_row(conn: psycopg.Connection, form_id: int, version: int) -> dict | None:
    return conn.execute("SELECT * FROM rules_versions WHERE form_id = %s AND version = %s", (form_id, version)).fetchone()


# jsonb keeps no key order; documents are served (and pulled) in the order people write them.
FIELD_ORDER = ("id", "description", "expression", "expectation", "kwargs", "message", "severity", "notify")


def _in_writing_order(entry: dict) -> dict:
    return dict(sorted(entry.items(), key=lambda item: FIELD_ORDER.index(item[0]) if item[0] in FIELD_ORDER else 99))


def version_body(row: dict) -> dict:
    document = row["document"]
    return {"version": row["version"], "created_at": row["created_at"], "created_by": row["created_by"],
            "rules": [_in_writing_order(e) for e in document.get("rules", [])],
            "expectations": [_in_writing_order(e) for e in document.get("expectations", [])]}


def current(conn: psycopg.Connection, form: dict) -> dict:
    """The rules in force with their version; a form that never had rules has none (version null)."""
    version = form.get("rules_version")
    if version is None:
        return {"version": None, "created_at": None, "created_by": None, "rules": [], "expectations": []}
    return version_body(_version_row(conn, form["id"], version))


def get_version(conn: psycopg.Connection, form: dict, version: str) -> dict:
    row = _version_row(conn, form["id"], int(version)) if version.isdigit() and len(version) < 10 else None
    if row is None:
        raise not_found(f"rules version {version!r} of form {form['slug']!r}")
    return version_body(row)


def list_versions(conn: psycopg.Connection, form: dict, page: paging.Page) -> dict:
    """The form's rules versions, newest first, each with who saved it, when, and how many rules it has."""
    before = page.after[0] if page.after else None
    rows = conn.execute(
        """SELECT version, created_at, created_by,
                  jsonb_array_length(document -> 'rules') AS rules,
                  jsonb_array_length(document -> 'expectations') AS expectations
             FROM rules_versions WHERE form_id = %s AND (%s::int IS NULL OR version < %s)
            ORDER BY version DESC LIMIT %s""",
        (form["id"], before, before, page.fetch),
    ).fetchall()
    return page.answer(rows, key=lambda r: (r["version"],),
                       shape=lambda r: {**r, "in_force": r["version"] == form["rules_version"]})


def ruleset_for(conn: psycopg.Connection, form: dict) -> RuleSet:
    """The form's rules in force, checked against its current questions (an empty set when it has none).

    RulesFileError when a stored version no longer fits the questions (a question it reads was removed)."""
    version = form.get("rules_version")
    if version is None:
        return RuleSet(form_label(form), "none")
    row = _version_row(conn, form["id"], version)
    return load_document(row["document"], form["questions"], f"{form_label(form)} version {version}", version=version)


# Ingestion reads the form (with its rules_version) on every request; checked rules are kept per process
# under (form, rules version, questions version), so a new version is used from the next request on. The
# form's creation time is part of the key because ids come back after a restored or truncated database.
_cache: dict[tuple, RuleSet] = {}
_cache_lock = threading.Lock()
CACHE_MAX = 1024


def cached_ruleset(conn: psycopg.Connection, form: dict) -> RuleSet:
    key = (form["id"], form["created_at"], form["rules_version"], form["version_id"])
    ruleset = _cache.get(key)
    if ruleset is None:
        ruleset = ruleset_for(conn, form)
        with _cache_lock:
            if len(_cache) >= CACHE_MAX:
                _cache.clear()
            _cache[key] = ruleset
    return ruleset


def as_yaml(pulled: dict) -> str:
    """A pulled version as a rules file that `fieldpipe rules push` takes back unchanged."""
    header = (f"# rules of form {pulled['form']}, version {pulled['version']}, saved by {pulled['created_by']} "
              f"at {pulled['created_at']:%Y-%m-%d %H:%M} UTC (fieldpipe rules pull)\n")
    document = {"form": pulled["form"],
                **{section: [_in_writing_order(e) for e in pulled["document"].get(section, [])]
                   for section in ("rules", "expectations")}}
    return header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=120)


def pull_documents(conn: psycopg.Connection, organization: str, form_slug: str | None = None) -> list[dict]:
    """[{form, version, created_at, created_by, document}] for the organization's forms that have rules."""
    return conn.execute(
        """SELECT f.slug AS form, rv.version, rv.created_at, rv.created_by, rv.document
             FROM forms f JOIN organizations o ON o.id = f.organization_id
             JOIN rules_versions rv ON rv.form_id = f.id AND rv.version = f.rules_version
            WHERE o.slug = %s AND (%s::text IS NULL OR f.slug = %s) ORDER BY f.slug""",
        (organization, form_slug, form_slug),
    ).fetchall()

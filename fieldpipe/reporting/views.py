"""The `reporting` schema's per-form views: one row per response at its latest revision, masked.

Views, not tables: they cost no storage and no refresh run, and are never stale; a BI tool reading one
scans that form's responses through the (form_id, ...) indexes like the API's own listing does. A view is
rebuilt in the transaction that changes the form's questions. If a BI query holds the old view at that
moment, the rebuild waits at most LOCK_TIMEOUT and is then left to `fieldpipe reporting refresh` (also
run by the daily `archive_responses` DAG) rather than holding up the form's editor.
"""

from __future__ import annotations

import logging
from typing import Callable

import psycopg
from psycopg import sql

from fieldpipe.reporting.columns import form_select, repeat_select
from fieldpipe.sheets.repeats import form_repeats

log = logging.getLogger(__name__)

ROLE = "fieldpipe_reporting"
LOCK_TIMEOUT = "2s"
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def view_name(org_slug: str, form_slug: str, form_id: int) -> str:
    """`<org>__<form>`, or `form_<id>` where both slugs together exceed PostgreSQL's identifier length."""
    name = f"{org_slug}__{form_slug}"
    return name if len(name) <= MAX_IDENTIFIER else f"form_{form_id}"


def _role_exists(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ROLE,)).fetchone() is not None


def refresh_form_view(conn: psycopg.Connection, form_id: int) -> str | None:
    """(Re)build one form's view, and one per repeat (`<view>__<repeat>`, one row per item); the form
    view's name, or None when a reader held a view past LOCK_TIMEOUT."""
    form = conn.execute(
        "SELECT f.slug, o.slug AS org FROM forms f JOIN organizations o ON o.id = f.organization_id WHERE f.id = %s",
        (form_id,)).fetchone()
    name = view_name(form["org"], form["slug"], form_id)
    about = f"form {form['slug']} of organization {form['org']}, masked"
    views = [(name, form_select(conn, form_id, masked=True, order=False)[0], f"responses of {about}")]
    for repeat in form_repeats(conn, form_id):
        repeat_name = f"{name}__{repeat['key']}"
        if len(repeat_name) > MAX_IDENTIFIER:
            repeat_name = f"form_{form_id}__{repeat['key']}"
        views.append((repeat_name, repeat_select(conn, form_id, repeat, masked=True)[0],
                      f"items of repeat {repeat['key']} of {about}"))
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            grant = _role_exists(conn)
            for title, query, comment in views:
                view = sql.Identifier("reporting", title)
                conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
                conn.execute(sql.SQL("CREATE VIEW {} AS {}").format(view, query))
                conn.execute(sql.SQL("COMMENT ON VIEW {} IS {}").format(view, sql.Literal(comment)))
                if grant:
                    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(view, sql.Identifier(ROLE)))
    except psycopg.errors.LockNotAvailable:
        log.warning("reporting view of form %s is in use; left for `fieldpipe reporting refresh`", form_id)
        return None
    return name


def enable_login(conn: psycopg.Connection, password: str) -> None:
    """Let the reporting role log in with `password` (what `make up` does for a local BI tool)."""
    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(ROLE), sql.Literal(password)))


def refresh_all(conn: psycopg.Connection, progress: Callable[[int], object] = lambda n: None) -> list[str]:
    """Rebuild every form's view and re-grant the schema (after the role was created by hand, say);
    `progress(1)` after each form."""
    if _role_exists(conn):
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA reporting TO {role}; "
                             "GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO {role}").format(role=sql.Identifier(ROLE)))
    names = []
    for row in conn.execute("SELECT id FROM forms ORDER BY id").fetchall():
        name = refresh_form_view(conn, row["id"])
        if name:
            names.append(name)
        progress(1)
    return names

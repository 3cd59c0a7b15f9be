"""What the `export_sheets` DAG runs: which forms export to a sheet, and one form's export with its target.

Kept here so the DAG file stays a thin adapter; the functions take a database connection and the
`google_sheets` connection fields, so tests call them without Airflow.
"""

from __future__ import annotations

import logging

import psycopg

from fieldpipe.pipelines import failures as pipeline_failures
from fieldpipe.sheets.export import export_form
from fieldpipe.sheets.quota import sheets_limiter
from fieldpipe.sheets.targets import open_target

log = logging.getLogger(__name__)


def pending_exports(conn: psycopg.Connection) -> list[dict]:
    """Every form with an enabled `sheet_export` task, in a stable order, as units of work for
    `fieldpipe.pipelines.groups`: {"key": form id, "name": "org/slug", "rows": responses changed since its
    export's watermark}. Forms with nothing new are listed too: a flag opened or closed changes their rows."""
    rows = conn.execute(
        """SELECT f.id AS form_id, o.slug || '/' || f.slug AS name,
                  (SELECT count(*) FROM responses r
                    WHERE r.form_id = f.id
                      AND r.updated_at > coalesce((SELECT min(e.watermark) FROM sheet_exports e WHERE e.form_id = f.id),
                                                  '-infinity')) AS rows
             FROM forms f JOIN organizations o ON o.id = f.organization_id
            WHERE EXISTS (SELECT 1 FROM form_tasks t WHERE t.form_id = f.id AND t.kind = 'sheet_export'
                                                     AND t.enabled)
            ORDER BY f.id""").fetchall()
    return [{"key": r["form_id"], "name": r["name"], "rows": r["rows"]} for r in rows]


PIPELINE = "export_sheets"


def export_form_sheet(conn: psycopg.Connection, form_id: int,
                      connection: tuple[str | None, dict] | None) -> dict:
    """Export one form to its target (Google, or var/exports/<slug>.xlsx); return the report as a dict.

    The form's `sheet_export` task is read now, not when the run listed the forms: a form deleted or no longer
    exporting to a sheet since then is skipped. A failure is recorded for the form (pipeline_failures)."""
    form = conn.execute(
        """SELECT f.slug, t.config FROM forms f
             JOIN form_tasks t ON t.form_id = f.id AND t.kind = 'sheet_export' AND t.enabled
            WHERE f.id = %s ORDER BY t.id LIMIT 1""", (form_id,)).fetchone()
    sheet_settings = form["config"] if form else None
    if not isinstance(sheet_settings, dict):
        summary = f"form {form_id}: no longer exports to a sheet (deleted or settings changed since the run began); skipped"
        log.info(summary)
        return {"summary": summary, "appended": 0, "updated": 0, "requests": 0, "skipped": True}
    with pipeline_failures.isolated(conn, PIPELINE, form_id, form["slug"]), sheets_limiter(conn) as limiter:
        report = export_form(conn, form_id, open_target(form["slug"], sheet_settings, connection, limiter),
                             sheet_settings)
    return {"summary": report.summary(), "appended": report.appended, "updated": report.updated,
            "requests": report.requests}


"""The `Summary` tab (a day's summaries of an assessment, every level) and the `Results` tab (one row per
student: a column per item, then total, percentage, grade, passed), written through the Sheets export's
`write_table` (Google Sheets through the `google_sheets` connection, or var/exports/assessment-<id>.xlsx).
A tab is replaced as a whole, so a rerun writes the same tab again.

The daily `aggregate_assessments` run writes both as of the end of its data interval (a backfill writes the
same Results again); the `export_results` DAG writes the Results tab within a minute of a change (an exam
closed, an answer key corrected, new marks), recorded in `assessments.results_exported_at`."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from typing import Any, Iterator, Mapping

import psycopg

from fieldpipe.assessments.definitions import get_assessment_row
from fieldpipe.assessments.results import all_results
from fieldpipe.reporting.downloads import csv_rows
from fieldpipe.sheets import open_target, write_table
from fieldpipe.sheets.quota import sheets_limiter
from fieldpipe.sheets.targets import PassRateChart

log = logging.getLogger("fieldpipe.assessments")

SUMMARY_TAB = "Summary"
HEADER = ["date", "level", "district", "block", "school", "class", "item", "item label", "students assessed",
          "students present", "students passing", "passing rate", "mean marks", "median marks", "grades"]
# Top down, so the district rows lead the tab and the passing-rate chart can be drawn over them.
LEVEL_ORDER = "CASE s.level WHEN 'district' THEN 1 WHEN 'block' THEN 2 WHEN 'school' THEN 3 ELSE 4 END"
PASSING_RATE = HEADER.index("passing rate") + 1


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == int(value) else float(value)


def summary_rows(conn: psycopg.Connection, assessment_id: int, summary_date: dt.date) -> list[list[Any]]:
    rows = conn.execute(
        f"""SELECT s.*, sc.udise, c.grade AS class_grade, c.section, i.key, i.label
              FROM assessment_summaries s
              JOIN assessment_items i ON i.id = s.item_id
              LEFT JOIN schools sc ON sc.id = s.school_id
              LEFT JOIN classes c ON c.id = s.class_id
             WHERE s.assessment_id = %s AND s.summary_date = %s
             ORDER BY {LEVEL_ORDER}, s.district, s.block NULLS FIRST, sc.udise NULLS FIRST, c.grade, c.section,
                      i.position""",
        (assessment_id, summary_date)).fetchall()
    return [[
        r["summary_date"].isoformat(), r["level"], r["district"], r["block"], r["udise"],
        None if r["class_id"] is None else f"{r['class_grade']}{r['section']}", r["key"], r["label"],
        r["students_assessed"], r["students_present"], r["students_passing"],
        round(r["students_passing"] / r["students_present"], 4) if r["students_present"] else None,
        _number(r["mean_marks"]), _number(r["median_marks"]),
        " ".join(f"{grade}:{n}" for grade, n in sorted(r["grade_distribution"].items())),
    ] for r in rows]


def export_summaries(conn: psycopg.Connection, summary_date: dt.date,
                     connection: tuple[str | None, dict] | None) -> dict[int, int]:
    """Write the Summary tab of every assessment that names a sheet and has summaries for the day.
    Returns {assessment id: data rows written}."""
    assessments = conn.execute(
        """SELECT a.id, a.sheet FROM assessments a
            WHERE a.sheet IS NOT NULL
              AND EXISTS (SELECT 1 FROM assessment_summaries s WHERE s.assessment_id = a.id AND s.summary_date = %s)
            ORDER BY a.id""", (summary_date,)).fetchall()
    written = {}
    with sheets_limiter(conn) as limiter:
        for assessment in assessments:
            sheet: Mapping[str, Any] = assessment["sheet"]
            target = open_target(f"assessment-{assessment['id']}", sheet, connection, limiter)
            rows = summary_rows(conn, assessment["id"], summary_date)
            chart = PassRateChart("Passing rate by learning outcome (district)",
                                  label_column=HEADER.index("item label") + 1, value_column=PASSING_RATE,
                                  rows=sum(1 for r in rows if r[1] == "district"))
            written[assessment["id"]] = write_table(target, SUMMARY_TAB, HEADER, rows,
                                                    percent_columns=(PASSING_RATE,), chart=chart)
    log.info("Summary tabs for %s: %s", summary_date.isoformat(),
             ", ".join(f"assessment {a}: {n} rows" for a, n in written.items()) or "no assessment names a sheet")
    return written



RESULTS_TAB = "Results"
RESULTS_LEADING = ["class", "roll number", "name", "status"]
RESULTS_TRAILING = ["total", "percentage", "grade", "passed"]


def results_table(conn: psycopg.Connection, assessment: dict, as_of: dt.datetime) -> tuple[list[str], Iterator[list]]:
    """The header and rows of the Results tab (and of results.csv): one row per student; an item's column holds
    its marks, or its grade for Grade evaluation."""
    items, results = all_results(conn, assessment, as_of)
    classes = {r["id"]: f"{r['grade']}{r['section']}" for r in conn.execute(
        """SELECT c.id, c.grade, c.section FROM classes c JOIN assessment_classes ac ON ac.class_id = c.id
            WHERE ac.assessment_id = %s""", (assessment["id"],))}
    per_item = "grades" if assessment["evaluation"] == "Grade" else "marks"
    header = RESULTS_LEADING + [i["key"] for i in items] + RESULTS_TRAILING

    def rows() -> Iterator[list]:
        for r in results:
            yield [classes.get(r["class_id"], str(r["class_id"])), r["roll_number"], r["name"], r["status"],
                   *(r[per_item][i["key"]] for i in items), r["total_marks"], r["percentage"], r["grade"],
                   {True: "yes", False: "no", None: None}[r["passed"]]]

    return header, rows()


def _write_results(conn: psycopg.Connection, assessment: dict, as_of: dt.datetime,
                   connection: tuple[str | None, dict] | None, limiter) -> int:
    target = open_target(f"assessment-{assessment['id']}", assessment["sheet"], connection, limiter)
    header, rows = results_table(conn, assessment, as_of)
    return write_table(target, RESULTS_TAB, header, list(rows))


def export_results_as_of(conn: psycopg.Connection, as_of: dt.datetime,
                         connection: tuple[str | None, dict] | None) -> dict[int, int]:
    """The daily run's Results tabs: every assessment naming a sheet that had marks or answers before the
    instant (an exam once closed), as of that instant. Returns {assessment id: rows written}."""
    assessments = conn.execute(
        """SELECT a.* FROM assessments a
            WHERE a.sheet IS NOT NULL AND a.created_at < %(as_of)s
              AND CASE WHEN a.submission_level = 'exam' THEN a.closed_at < %(as_of)s
                       ELSE EXISTS (SELECT 1 FROM assessment_submissions s
                                     WHERE s.assessment_id = a.id AND s.received_at < %(as_of)s) END
            ORDER BY a.id""", {"as_of": as_of}).fetchall()
    written = {}
    with sheets_limiter(conn) as limiter:
        for assessment in assessments:
            written[assessment["id"]] = _write_results(conn, assessment, as_of, connection, limiter)
    log.info("Results tabs as of %s: %s", as_of.isoformat(),
             ", ".join(f"assessment {a}: {n} students" for a, n in written.items()) or "none to write")
    return written


def export_changed_results(conn: psycopg.Connection, connection: tuple[str | None, dict] | None) -> dict[int, int]:
    """The Results tab of every assessment naming a sheet whose results changed since its tab was last written
    (an exam closed or its key corrected; new marks), as of now. Each tab is committed as it is written, so
    one failing sheet leaves the others written and is tried again next run."""
    changed = conn.execute(
        """SELECT a.*, greatest(a.results_changed_at, m.last_received_at) AS changed
             FROM assessments a
             LEFT JOIN LATERAL (SELECT max(received_at) AS last_received_at FROM assessment_submissions s
                                 WHERE s.assessment_id = a.id AND a.submission_level <> 'exam') m ON true
            WHERE a.sheet IS NOT NULL AND (a.submission_level <> 'exam' OR a.closed_at IS NOT NULL)
              AND greatest(a.results_changed_at, m.last_received_at) > coalesce(a.results_exported_at, '-infinity')
            ORDER BY a.id""").fetchall()
    conn.commit()
    written = {}
    with sheets_limiter(conn) as limiter:
        for assessment in changed:
            as_of = conn.execute("SELECT now() AS t").fetchone()["t"]
            written[assessment["id"]] = _write_results(conn, assessment, as_of, connection, limiter)
            conn.execute("UPDATE assessments SET results_exported_at = %s WHERE id = %s",
                         (assessment["changed"], assessment["id"]))
            conn.commit()
    log.info("Results tabs of changed assessments: %s",
             ", ".join(f"assessment {a}: {n} students" for a, n in written.items()) or "none changed")
    return written


def results_csv(conn: psycopg.Connection, organization_id: int, assessment_id: Any,
                as_of: dt.datetime | None = None) -> tuple[bytes, str]:
    """The Results tab as CSV (every class of the assessment, as of `as_of`, default now) and its ETag."""
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    as_of = as_of or conn.execute("SELECT now() AS t").fetchone()["t"]
    body = csv_rows(*results_table(conn, assessment, as_of))
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

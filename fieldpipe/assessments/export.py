"""The `Summary` tab: a day's summaries of an assessment, every level, written through the Sheets export's
`write_table` (Google Sheets through the `google_sheets` connection, or var/exports/assessment-<id>.xlsx).
The tab is replaced as a whole, so a rerun writes the same tab again."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, Mapping

import psycopg

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


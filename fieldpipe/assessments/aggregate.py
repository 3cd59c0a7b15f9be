"""Daily assessment summaries: grade exam answers, then per assessment × item the students assessed,
present and passing (TSP), mean and median marks and the grade distribution, for every class, school,
block and district, as they stood at the end of the data interval.

Each interval's rows are replaced as a whole (delete + insert in one transaction) and computed only from
data received before the interval's end, so reruns and backfills of past days give identical tables.
The SQL is in `include/sql/assessments/`, parameterised by the interval.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import psycopg

from fieldpipe.config import REPO_ROOT
from fieldpipe.assessments.definitions import get_assessment_row, get_items
from fieldpipe.problems import FieldError, invalid

log = logging.getLogger("fieldpipe.assessments")

SQL_DIR = REPO_ROOT / "include" / "sql" / "assessments"
LEVELS = ("class", "school", "block", "district")
# The per-class histogram hashes every effective mark once; enough memory keeps it off disk.
AGGREGATION_WORK_MEM = "512MB"


def _same_at_every_level(count: str) -> str:
    totals = [f"sum({count}) FILTER (WHERE level = '{level}')" for level in LEVELS]
    return " AND ".join(f"{totals[0]} IS NOT DISTINCT FROM {total}" for total in totals[1:])


# What a day's written summaries must satisfy (common-sql table checks, the DAG's `check_summary_rows`): every
# school, block and district counts exactly the students of the classes it rolls up, so a roll-up that drops or
# doubles a class fails. (Bounds such as "counts are not negative" or "passing <= present" hold by construction
# in effective_counts.sql, so as checks they could never fail.) An empty day passes.
def summary_checks() -> dict[str, dict]:
    """A fresh mapping each time: the operator writes each check's result into it."""
    return {f"{count}_same_at_every_level": {"check_statement": _same_at_every_level(count)}
            for count in ("students_assessed", "students_present", "students_passing")}


def sql(name: str) -> str:
    return (SQL_DIR / f"{name}.sql").read_text()


def _interval(interval_start: dt.datetime, interval_end: dt.datetime) -> dict:
    if interval_end <= interval_start:
        raise ValueError(f"empty data interval {interval_start} .. {interval_end}")
    return {"interval_start": interval_start, "interval_end": interval_end, "summary_date": interval_start.date()}


def grade_exam_answers(conn: psycopg.Connection, interval_end: dt.datetime, assessment_id: int | None = None) -> int:
    """Grade every answer received before `interval_end` (of one exam with `assessment_id`) not yet graded
    against its question's current key; returns how many were graded."""
    with conn.transaction():
        graded = conn.execute(sql("grade_exam_answers"),
                              {"interval_end": interval_end, "assessment_id": assessment_id}).rowcount
    log.info("graded %d exam answers received before %s%s", graded, interval_end.isoformat(),
             f" of exam {assessment_id}" if assessment_id else "")
    return graded


def summarize_interval(conn: psycopg.Connection, interval_start: dt.datetime, interval_end: dt.datetime) -> dict:
    """Replace the summaries of the day starting at `interval_start`; return what was written, per level."""
    params = _interval(interval_start, interval_end)
    with conn.transaction():
        conn.execute(f"SET LOCAL work_mem = '{AGGREGATION_WORK_MEM}'")
        deleted = conn.execute(sql("delete_interval"), params).rowcount
        conn.execute(sql("places"))
        conn.execute("ANALYZE places")
        conn.execute(sql("effective_counts"), params)
        conn.execute("ANALYZE effective_counts")
        effective = conn.execute("SELECT coalesce(sum(assessed), 0) AS n FROM effective_counts").fetchone()["n"]
        written = conn.execute(sql("summarize"), params).rowcount
        conn.execute(sql("record_run"), {**params, "rows_written": written})
        per_level = {r["level"]: r["n"] for r in conn.execute(
            "SELECT level, count(*) AS n FROM assessment_summaries WHERE summary_date = %s GROUP BY level",
            (params["summary_date"],))}
    result = {"summary_date": params["summary_date"].isoformat(), "students_counted": effective,
              "rows_replaced": deleted, "rows_written": written, "per_level": per_level}
    log.info("summaries for %s: %d student results counted -> %d summary rows %s (replaced %d)", result["summary_date"],
             effective, written, per_level, deleted)
    return result


def read_summary(conn: psycopg.Connection, organization_id: int, assessment_id: Any, level: str,
                 summary_date: str | None = None) -> dict:
    """The summary of one assessment at one level, for a day (default: the latest computed)."""
    assessment = get_assessment_row(conn, organization_id, assessment_id)
    errors = []
    if level not in LEVELS:
        errors.append(FieldError("level", "enum", f"must be one of {', '.join(LEVELS)}"))
    day = None
    if summary_date is not None:
        try:
            day = dt.date.fromisoformat(summary_date)
        except ValueError:
            errors.append(FieldError("date", "date", "must be a date YYYY-MM-DD"))
    if errors:
        raise invalid(errors)
    if day is None:
        day = conn.execute("SELECT max(summary_date) AS d FROM assessment_summaries WHERE assessment_id = %s",
                           (assessment["id"],)).fetchone()["d"]
    items = {i["id"]: i for i in get_items(conn, assessment["id"])}
    rows = conn.execute(
        """SELECT s.*, sc.udise, sc.name AS school_name, c.grade, c.section
             FROM assessment_summaries s
             LEFT JOIN schools sc ON sc.id = s.school_id
             LEFT JOIN classes c ON c.id = s.class_id
            WHERE s.assessment_id = %s AND s.level = %s AND s.summary_date = %s
            ORDER BY s.district, s.block NULLS FIRST, sc.udise NULLS FIRST, c.grade, c.section, s.item_id""",
        (assessment["id"], level, day),
    ).fetchall()
    return {
        "assessment_id": assessment["id"], "level": level, "date": day,
        "rows": [{
            "district": r["district"], "block": r["block"], "school": r["udise"], "school_name": r["school_name"],
            "class": None if r["class_id"] is None else {"id": r["class_id"], "grade": r["grade"], "section": r["section"]},
            "item": items[r["item_id"]]["key"], "item_label": items[r["item_id"]]["label"],
            "students_assessed": r["students_assessed"], "students_present": r["students_present"],
            "students_passing": r["students_passing"],
            "passing_rate": round(r["students_passing"] / r["students_present"], 4) if r["students_present"] else None,
            "mean_marks": r["mean_marks"], "median_marks": r["median_marks"],
            "grade_distribution": r["grade_distribution"],
        } for r in rows],
    }

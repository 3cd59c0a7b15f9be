"""Figure `aggregation`: 10,000,000 student-mark rows aggregated into all summary levels.

Data: `fieldpipe.dev.synthetic_assessments` makes it in the database with generate_series: 250,000 students in
10,000 classes of 2,500 schools (100 blocks, 10 districts), 4 assessments × 10 learning outcomes each, so
10,000,000 current marks (plus 1,000,000 superseded ones that must be skipped). Measured: one
`summarize_interval` (the DAG's task) over an interval that sees every mark: class, school, block and district
rows with students assessed/present/passing, mean, median and grade distribution. Rerunning the same interval
must leave a byte-identical table (checked here at full size; the 30-day backfill twice is a test).

Baseline (same run): the same rows read out of the database into pandas and aggregated there with groupby
(sums, mean, median, grade counts at the four levels), on every tenth class (1,000,000 rows), the time
multiplied by 10.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time

from bench.common import figure, throwaway_database
from fieldpipe.assessments import aggregate
from fieldpipe.dev import synthetic_assessments as synthetic
from fieldpipe.db import connect

SHAPE = synthetic.Shape(districts=10, blocks_per_district=10, schools_per_block=25, classes_per_school=4,
                        students_per_class=25, assessments=4, items_per_assessment=10)
START = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
DAYS = 30
SAMPLE_EVERY = 10
TARGET_SECONDS = 60


def _dump_hash(conn) -> str:
    digest = hashlib.sha256()
    with conn.cursor().copy("COPY (SELECT * FROM assessment_summaries ORDER BY summary_date, assessment_id, level, "
                            "entity, item_id) TO STDOUT") as copy:
        for chunk in copy:
            digest.update(bytes(chunk))
    return digest.hexdigest()


def _pandas_baseline(conn, interval_end: dt.datetime) -> float:
    """Seconds to fetch every SAMPLE_EVERY-th class's effective rows and aggregate them in pandas, × SAMPLE_EVERY."""
    import pandas as pd

    started = time.perf_counter()
    rows = conn.execute(
        """SELECT m.assessment_id, m.item_id, s.district, s.block, c.school_id, m.class_id, m.is_present,
                  m.marks >= i.pass_marks AS passing, m.marks, m.grade
             FROM student_marks m JOIN assessment_items i ON i.id = m.item_id
             JOIN classes c ON c.id = m.class_id JOIN schools s ON s.id = c.school_id
            WHERE m.class_id %% %s = 0 AND m.received_at < %s
              AND (m.superseded_at IS NULL OR m.superseded_at >= %s)""",
        (SAMPLE_EVERY, interval_end, interval_end)).fetchall()
    frame = pd.DataFrame(rows)
    frame["marks"] = frame["marks"].astype("float64")
    frame["passing"] = frame["passing"].fillna(False)
    for keys in (["district", "block", "school_id", "class_id"], ["district", "block", "school_id"],
                 ["district", "block"], ["district"]):
        groups = frame.groupby(["assessment_id", "item_id", *keys])
        groups.agg(assessed=("is_present", "size"), present=("is_present", "sum"), passing=("passing", "sum"),
                   mean_marks=("marks", "mean"), median_marks=("marks", "median"))
        frame.groupby(["assessment_id", "item_id", *keys, "grade"]).size().unstack(fill_value=0)
    return (time.perf_counter() - started) * SAMPLE_EVERY


def run() -> dict:
    with throwaway_database() as url:
        with connect(url) as conn:
            generated_at = time.perf_counter()
            rows = synthetic.generate(conn, SHAPE, START, DAYS)
            conn.commit()
            generation_seconds = time.perf_counter() - generated_at
        with connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            end = START + dt.timedelta(days=DAYS + 1)
            started = time.perf_counter()
            result = aggregate.summarize_interval(conn, end - dt.timedelta(days=1), end)
            seconds = time.perf_counter() - started
            first = _dump_hash(conn)
            aggregate.summarize_interval(conn, end - dt.timedelta(days=1), end)
            identical = _dump_hash(conn) == first
            baseline = _pandas_baseline(conn, end)
    assert result["students_counted"] == SHAPE.current_marks == 10_000_000, result
    return figure(seconds, "s", baseline, f"<= {TARGET_SECONDS} s", higher_is_better=False,
                  rows_in_table=rows, students_counted=result["students_counted"], summary_rows=result["rows_written"],
                  per_level=result["per_level"], rerun_byte_identical=identical,
                  generation_seconds=round(generation_seconds, 1),
                  baseline_method=f"pandas groupby over rows fetched from the DB, 1 class in {SAMPLE_EVERY}, "
                                  f"time x {SAMPLE_EVERY}")

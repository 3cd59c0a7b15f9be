"""School assessments: rosters (schools, classes, students, subjects), assessment definitions,
idempotent submissions (student marks, class results, exam answers) and daily summaries.

The daily summaries are computed by `aggregate.summarize_interval` (the `aggregate_assessments` DAG)
from SQL in `include/sql/assessments/`.
"""

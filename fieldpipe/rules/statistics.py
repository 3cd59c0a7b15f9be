"""Statistical checks: expectations over the distribution of a form's own recent answers, evaluated in SQL.

They catch invented data that no single-response rule can see:

- `expect_column_values_within_median_deviations` (numbers): a response whose answer lies more than `k`
  median absolute deviations from the median of the recent answers, of the whole form (`by: form`) or of
  the same collector (`by: collector`). MAD = median(|x - median|), unscaled; not judged while the group
  has fewer than `min_answers` answers or a MAD of 0.
- `expect_collector_answers_to_vary` (numbers, text, dates): every response of a collector whose most
  common answer makes up more than `max_share` of that collector's recent answers (at least `min_answers`).

"Recent" means received in the last `window_days` days (default 90). Each check is one set-based
statement per form: medians with `percentile_disc` over the window, joined to the batch.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from fieldpipe.rules.compiler import extraction
from fieldpipe.rules.expression import DATE, NUMBER, TEXT

MEDIAN_DEVIATIONS = "expect_column_values_within_median_deviations"
COLLECTOR_VARIES = "expect_collector_answers_to_vary"

# name -> (arguments besides `column`, answer types it applies to)
STATISTICAL: dict[str, tuple[set[str], tuple[str, ...]]] = {
    MEDIAN_DEVIATIONS: ({"k", "by", "window_days", "min_answers"}, (NUMBER,)),
    COLLECTOR_VARIES: ({"max_share", "window_days", "min_answers"}, (NUMBER, TEXT, DATE)),
}
DEFAULTS = {"k": 3, "by": "form", "window_days": 90, "min_answers": 20, "max_share": 0.9}


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


def check_arguments(name: str, kwargs: dict) -> list[str]:
    """What is wrong with a statistical check's arguments (its column is checked with the other expectations)."""
    problems = []
    args = {**DEFAULTS, **kwargs}
    if name == MEDIAN_DEVIATIONS:
        if not _number(args["k"]) or not 0 < args["k"] <= 1000:
            problems.append("k must be a number above 0 (at most 1000)")
        if args["by"] not in ("form", "collector"):
            problems.append("by must be form or collector")
    if name == COLLECTOR_VARIES and (not _number(args["max_share"]) or not 0 < args["max_share"] < 1):
        problems.append("max_share must be a number between 0 and 1")
    if isinstance(args["window_days"], bool) or not isinstance(args["window_days"], int) or not 1 <= args["window_days"] <= 3660:
        problems.append("window_days must be a whole number of days from 1 to 3660")
    if isinstance(args["min_answers"], bool) or not isinstance(args["min_answers"], int) or not 2 <= args["min_answers"] <= 1_000_000:
        problems.append("min_answers must be a whole number from 2 to 1000000")
    return problems


MEDIAN_DEVIATIONS_SQL = """
WITH recent AS (
    SELECT {group} AS grp, {value} AS v
      FROM responses WHERE form_id = {form_id} AND received_at > now() - make_interval(days => {window_days}::int)
), centre AS (
    SELECT grp, percentile_disc(0.5) WITHIN GROUP (ORDER BY v) AS median, count(*) AS n
      FROM recent WHERE v IS NOT NULL GROUP BY grp
), spread AS (
    SELECT r.grp, c.median, percentile_disc(0.5) WITHIN GROUP (ORDER BY abs(r.v - c.median)) AS mad
      FROM recent r JOIN centre c USING (grp)
     WHERE r.v IS NOT NULL AND c.n >= {min_answers} GROUP BY r.grp, c.median
)
SELECT b.id FROM (SELECT batch.id, {group} AS grp, {value} AS v
                    FROM ({source}) batch JOIN responses USING (id)) b
  JOIN spread s USING (grp)
 WHERE s.mad > 0 AND abs(b.v - s.median) > {k}::numeric * s.mad
 ORDER BY b.id
"""

COLLECTOR_VARIES_SQL = """
WITH recent AS (
    SELECT collector_id, {value} AS v
      FROM responses WHERE form_id = {form_id} AND received_at > now() - make_interval(days => {window_days}::int)
), answer_counts AS (
    SELECT collector_id, count(*) AS n FROM recent WHERE v IS NOT NULL GROUP BY collector_id, v
), uniform AS (
    SELECT collector_id FROM answer_counts GROUP BY collector_id
    HAVING sum(n) >= {min_answers} AND max(n) > {max_share}::numeric * sum(n)
)
SELECT batch.id FROM ({source}) batch JOIN responses r USING (id) JOIN uniform u ON u.collector_id = r.collector_id
 ORDER BY batch.id
"""


def unexpected_in_sql(conn: psycopg.Connection, form_id: int, check, source: sql.Composable) -> list[int]:
    """Ids of the batch's responses (`source`: id, revision, answers) that the statistical check flags."""
    args = {**DEFAULTS, **check.kwargs}
    value = extraction(check.column, check.column_type, sql.SQL("(responses.answers -> {})").format(sql.Literal(check.column)))
    params = {"form_id": sql.Literal(form_id), "window_days": sql.Literal(args["window_days"]),
              "min_answers": sql.Literal(args["min_answers"]), "source": source}
    if check.expectation == MEDIAN_DEVIATIONS:
        group = sql.SQL("responses.collector_id" if args["by"] == "collector" else "''")
        query = sql.SQL(MEDIAN_DEVIATIONS_SQL).format(group=group, value=value, k=sql.Literal(str(args["k"])), **params)
    else:
        value = extraction(check.column, check.column_type)
        query = sql.SQL(COLLECTOR_VARIES_SQL).format(value=value, max_share=sql.Literal(str(args["max_share"])), **params)
    return [row[0] if isinstance(row, tuple) else row["id"] for row in conn.execute(query)]

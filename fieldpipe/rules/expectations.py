"""Column expectations, run with GX Core over a batch of one form's responses as a DataFrame.

Great Expectations is imported here, inside the call, because importing it takes seconds. An
expectation that fails marks its unexpected rows (found through `unexpected_index_column_names`);
one that errors (GX reports that as a failure with the real error in `exception_info`) is a broken
rule and flags nothing. With `mostly`, an expectation that succeeds flags nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row

from fieldpipe.rules.compiler import extraction, message
from fieldpipe.rules.expression import NUMBER
from fieldpipe.rules.loader import Expectation

log = logging.getLogger(__name__)


def _class_name(expectation: str) -> str:
    return "".join(word.capitalize() for word in expectation.split("_"))


def _error(exception_info: Any) -> str | None:
    """The first raised exception's message in a GX `exception_info`, flat or keyed by metric."""
    if not isinstance(exception_info, dict):
        return None
    if exception_info.get("raised_exception"):
        return exception_info.get("exception_message") or "the expectation raised an error"
    for value in exception_info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "the expectation raised an error"
    return None


def load_frame(conn: psycopg.Connection, form_id: int, expectations: list[Expectation], since: dt.datetime):
    """The batch as a DataFrame: response_id plus one typed column per answer key the expectations check."""
    import pandas as pd

    columns = {e.column: e.column_type for e in expectations}
    selected = [
        sql.SQL("{}{} AS {}").format(extraction(key, kind), sql.SQL("::float8" if kind == NUMBER else ""), sql.Identifier(key))
        for key, kind in sorted(columns.items())
    ]
    query = sql.SQL("SELECT id AS response_id, {} FROM responses WHERE form_id = {} AND updated_at > {} ORDER BY id").format(
        sql.SQL(", ").join(selected), sql.Literal(form_id), sql.Literal(since))
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query).fetchall()
    return pd.DataFrame(rows, columns=["response_id", *sorted(columns)])


def run_expectations(conn: psycopg.Connection, form_id: int, expectations: list[Expectation],
                     since: dt.datetime) -> tuple[list[str], dict[str, str]]:
    """Write violations of the expectations into run_violations; return (ids that ran cleanly, {broken id: error})."""
    import great_expectations as gx

    frame = load_frame(conn, form_id, expectations, since)
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("fieldpipe").add_dataframe_asset("responses")
    batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(batch_parameters={"dataframe": frame})
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["response_id"]}
    evaluated, broken = [], {}
    for item in expectations:
        expectation = getattr(gx.expectations, _class_name(item.expectation))(column=item.column, **item.kwargs)
        result = batch.validate(expectation, result_format=result_format)
        error = _error(result.exception_info)
        if error:
            broken[item.id] = error
            continue
        evaluated.append(item.id)
        if result.success:
            continue
        ids = [int(row["response_id"]) for row in result.result.get("unexpected_index_list") or []]
        conn.execute(
            sql.SQL("""INSERT INTO run_violations (response_id, revision, rule_id, message)
                       SELECT id, revision, {}, {} FROM responses WHERE id = ANY({}::bigint[])""").format(
                sql.Literal(item.id), message(item.message_parts), sql.Literal(ids)),
        )
        log.info("expectation %s: %d of %d responses unexpected", item.id, len(ids), len(frame))
    return evaluated, broken

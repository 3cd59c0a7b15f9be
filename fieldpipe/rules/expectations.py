"""Column expectations: GX Core over a batch of one form's responses as a DataFrame, and the statistical
checks (fieldpipe.rules.statistics) in SQL.

Great Expectations is imported here, inside the call, because importing it takes seconds. An
expectation that fails marks its unexpected rows (found through `unexpected_index_column_names`);
one that errors (GX reports that as a failure with the real error in `exception_info`) is a broken
rule and flags nothing. With `mostly`, an expectation that succeeds flags nothing.
"""

from __future__ import annotations

import logging
import threading
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


def _as_frame_value(value: sql.Composable, kind: str) -> sql.Composable:
    """Numbers as float8; one beyond float8's range (a row stored before the API bounded numbers) reads as
    missing instead of failing the form's whole run."""
    if kind != NUMBER:
        return value
    return sql.SQL("CASE WHEN abs({0}) < 1e300 THEN ({0})::float8 END").format(value)


def load_frame(conn: psycopg.Connection, expectations: list[Expectation], source: sql.Composable):
    """The batch as a DataFrame: response_id plus one typed column per answer key the expectations check."""
    import pandas as pd

    columns = {e.column: e.column_type for e in expectations}
    selected = [sql.SQL("{} AS {}").format(_as_frame_value(extraction(key, kind), kind), sql.Identifier(key))
                for key, kind in sorted(columns.items())]
    query = sql.SQL("SELECT id AS response_id, {} FROM ({}) batch ORDER BY id").format(
        sql.SQL(", ").join(selected), source)
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(query).fetchall()
    return pd.DataFrame(rows, columns=["response_id", *sorted(columns)])


def _import_gx():
    """GX Core (and pandas), without its INFO lines (hundreds at import): the task's summary line of numbers is
    what a reader should see first."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    import pandas  # noqa: F401  (load_frame's)

    for name in list(logging.root.manager.loggerDict):  # some of its modules set their own level
        if name.startswith("great_expectations."):
            logging.getLogger(name).setLevel(logging.WARNING)
    return gx


def import_in_background() -> threading.Thread:
    """Start importing GX Core in a thread: a validation task that will need it imports it (seconds of CPU; a
    minute on a loaded machine) while its other forms' SQL runs. A later import waits for this one to finish."""
    thread = threading.Thread(target=_import_gx, name="import-great-expectations", daemon=True)
    thread.start()
    return thread


def _quiet_gx():
    """GX Core with an ephemeral context, without progress bars in the task log."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return gx, context


def _gx_unexpected(conn: psycopg.Connection, expectations: list[Expectation],
                   source: sql.Composable) -> tuple[dict[str, list[int]], dict[str, str]]:
    gx, context = _quiet_gx()
    frame = load_frame(conn, expectations, source)
    asset = context.data_sources.add_pandas("fieldpipe").add_dataframe_asset("responses")
    batch = asset.add_batch_definition_whole_dataframe("batch").get_batch(batch_parameters={"dataframe": frame})
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["response_id"]}
    found, broken = {}, {}
    for item in expectations:
        expectation = getattr(gx.expectations, _class_name(item.expectation))(column=item.column, **item.kwargs)
        result = batch.validate(expectation, result_format=result_format)
        error = _error(result.exception_info)
        if error:
            broken[item.id] = error
            continue
        found[item.id] = [] if result.success else [
            int(row["response_id"]) for row in result.result.get("unexpected_index_list") or []]
        log.debug("expectation %s: %d of %d responses unexpected", item.id, len(found[item.id]), len(frame))
    return found, broken


def find_unexpected(conn: psycopg.Connection, form_id: int, expectations: list[Expectation],
                    source: sql.Composable) -> tuple[dict[str, list[int]], dict[str, str]]:
    """({expectation id: ids of the batch's responses it flags}, {broken id: error}) for the batch `source`
    (a relation with id, revision, answers): GX Core expectations over a DataFrame, statistical checks in SQL."""
    from fieldpipe.rules.statistics import STATISTICAL, unexpected_in_sql

    found, broken = {}, {}
    for item in expectations:
        if item.expectation in STATISTICAL:
            try:
                with conn.transaction():
                    found[item.id] = unexpected_in_sql(conn, form_id, item, source)
            except psycopg.errors.DataError as err:
                broken[item.id] = f"fails in PostgreSQL: {err.diag.message_primary}"
    column_checks = [e for e in expectations if e.expectation not in STATISTICAL]
    if column_checks:
        gx_found, gx_broken = _gx_unexpected(conn, column_checks, source)
        found.update(gx_found)
        broken.update(gx_broken)
    return found, broken


def run_expectations(conn: psycopg.Connection, form_id: int, expectations: list[Expectation],
                     source: sql.Composable) -> tuple[list[str], dict[str, str]]:
    """Write violations of the expectations into run_violations; return (ids that ran cleanly, {broken id: error})."""
    found, broken = find_unexpected(conn, form_id, expectations, source)
    for item in expectations:
        if found.get(item.id):
            conn.execute(
                sql.SQL("""INSERT INTO run_violations (response_id, revision, rule_id, message)
                           SELECT id, revision, {}, {} FROM responses WHERE id = ANY({}::bigint[])""").format(
                    sql.Literal(item.id), message(item.message_parts), sql.Literal(found[item.id])),
            )
    return list(found), broken

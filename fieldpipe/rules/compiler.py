"""The SQL executor: checked rules compiled into one set-based query over many responses.

Every answer a rule set touches is extracted once per response into a typed column (NULL when empty
or not of the question's type); each rule becomes `CASE WHEN <all answers it reads are present>
THEN <expression> END`, true, false or NULL, the same three values the in-process executor gives.
Everything that comes from a rules document enters the SQL as a quoted literal (psycopg.sql), never as text.
"""

from __future__ import annotations

from typing import Iterable

from psycopg import sql

from fieldpipe.rules.expression import (
    BOOLEAN, CHOICES, DATE, NUMBER, TEXT, Answer, Arithmetic, Compare, Count, InList, IsEmpty, Literal, Logical,
    Matches, Negate, Node, Not, Today, answers_read, typed_answers,
)

# From the answer's raw JSON value (`raw`, looked up once per response and key) to a typed SQL value.
_EXTRACT = {
    NUMBER: "CASE WHEN jsonb_typeof({raw}) = 'number' THEN {raw}::numeric END",
    TEXT: "CASE WHEN jsonb_typeof({raw}) = 'string' THEN NULLIF({raw} #>> '{{}}', '') END",
    # Only canonical YYYY-MM-DD calendar dates, as Python's date.fromisoformat reads them (nested CASEs
    # keep the cast from ever seeing anything else).
    DATE: ("CASE WHEN jsonb_typeof({raw}) = 'string' AND pg_input_is_valid({raw} #>> '{{}}', 'date') THEN "
           "CASE WHEN to_char(({raw} #>> '{{}}')::date, 'YYYY-MM-DD') = {raw} #>> '{{}}' "
           "THEN ({raw} #>> '{{}}')::date END END"),
    BOOLEAN: "CASE WHEN jsonb_typeof({raw}) = 'boolean' THEN {raw}::boolean END",
    CHOICES: "CASE WHEN jsonb_typeof({raw}) = 'array' THEN jsonb_array_length({raw}) ELSE 0 END",
}
ANSWER_TEXT = ("CASE jsonb_typeof(answers -> {key}) WHEN 'array' THEN "
               "array_to_string(ARRAY(SELECT jsonb_array_elements_text(answers -> {key})), ', ') "
               "ELSE answers ->> {key} END")
TODAY = sql.SQL("(now() AT TIME ZONE 'UTC')::date")


def column(key: str) -> sql.Identifier:
    return sql.Identifier(f"answer:{key}")


def raw(key: str) -> sql.Identifier:
    return sql.Identifier(f"raw:{key}")


def extraction(key: str, kind: str, source: sql.Composable | None = None) -> sql.Composed:
    """The answer under `key` as an SQL value of its type, NULL when empty or of another type.

    `source` is the answer's JSON value; by default `answers -> key`."""
    value = source if source is not None else sql.SQL("(answers -> {})").format(sql.Literal(key))
    return sql.SQL(_EXTRACT[kind]).format(raw=value)


def _answer_types(trees: Iterable[Node]) -> dict[str, str]:
    types: dict[str, str] = {}
    for tree in trees:
        types.update(typed_answers(tree))
    return dict(sorted(types.items()))


def typed_relation(trees: list[Node], source: sql.Composable) -> sql.Composed:
    """`source` (id, revision, answers) plus one typed column `"answer:<key>"` per answer the trees touch.

    Each answer's JSON is looked up once (`"raw:<key>"`, behind OFFSET 0 so it is not recomputed per use)."""
    types = _answer_types(trees)
    raws = [sql.SQL("answers -> {} AS {}").format(sql.Literal(key), raw(key)) for key in types]
    typed = [sql.SQL("{} AS {}").format(extraction(key, kind, raw(key)), column(key)) for key, kind in types.items()]
    return sql.SQL("SELECT id, revision, answers{} FROM (SELECT id, revision, answers{} FROM ({}) s OFFSET 0) r OFFSET 0").format(
        sql.SQL("").join(sql.SQL(", {}").format(t) for t in typed),
        sql.SQL("").join(sql.SQL(", {}").format(r) for r in raws), source)


def verdict(tree: Node) -> sql.Composable:
    """true (passed), false (violated) or NULL (not evaluated), over the typed columns."""
    guard = [sql.SQL("{} IS NOT NULL").format(column(key)) for key in sorted(answers_read(tree))]
    expression = compile_node(tree)
    if not guard:
        return expression
    return sql.SQL("CASE WHEN {} THEN {} END").format(sql.SQL(" AND ").join(guard), expression)


def message(parts: list[tuple[str, str]]) -> sql.Composable:
    pieces = [sql.Literal(text) if kind == "text" else sql.SQL(ANSWER_TEXT).format(key=sql.Literal(text))
              for kind, text in parts]
    return sql.SQL("concat({})").format(sql.SQL(", ").join(pieces)) if pieces else sql.Literal("")


def _literal(node: Literal) -> sql.Composable:
    if node.kind == NUMBER:
        return sql.SQL("{}::numeric").format(sql.Literal(str(node.value)))
    if node.kind == DATE:
        return sql.SQL("{}::date").format(sql.Literal(node.value.isoformat()))
    if node.kind == BOOLEAN:
        return sql.SQL("TRUE" if node.value else "FALSE")
    return sql.SQL("{}::text").format(sql.Literal(node.value))


def compile_node(node: Node) -> sql.Composable:
    if isinstance(node, Literal):
        return _literal(node)
    if isinstance(node, Today):
        return TODAY
    if isinstance(node, (Answer, Count)):
        return column(node.key)
    if isinstance(node, IsEmpty):
        if node.answer_type == CHOICES:
            return sql.SQL("({} {} 0)").format(column(node.key), sql.SQL(">" if node.negated else "="))
        return sql.SQL("({} IS {}NULL)").format(column(node.key), sql.SQL("NOT " if node.negated else ""))
    if isinstance(node, Negate):
        return sql.SQL("(- {})").format(compile_node(node.operand))
    if isinstance(node, Arithmetic):
        left, right = compile_node(node.left), compile_node(node.right)
        if node.op == "/":
            return sql.SQL("fieldpipe_rule_div({}, {})").format(left, right)
        return sql.SQL("({} {} {})").format(left, sql.SQL(node.op), right)
    if isinstance(node, Compare):
        op = sql.SQL("<>" if node.op == "!=" else node.op)
        if node.left.type == TEXT and node.op not in ("=", "!="):
            # Code-point order, as Python compares strings, whatever the database's collation.
            return sql.SQL('({} COLLATE "C" {} {})').format(compile_node(node.left), op, compile_node(node.right))
        return sql.SQL("({} {} {})").format(compile_node(node.left), op, compile_node(node.right))
    if isinstance(node, InList):
        values = sql.SQL(", ").join(_literal(v) for v in node.values)
        return sql.SQL("({} {}IN ({}))").format(compile_node(node.operand), sql.SQL("NOT " if node.negated else ""), values)
    if isinstance(node, Matches):
        return sql.SQL("({} ~ {})").format(compile_node(node.operand), sql.Literal(node.sql_pattern))
    if isinstance(node, Not):
        return sql.SQL("(NOT {})").format(compile_node(node.operand))
    if isinstance(node, Logical):
        return sql.SQL("({} {} {})").format(compile_node(node.left), sql.SQL(node.op.upper()), compile_node(node.right))
    raise TypeError(node)  # pragma: no cover


def violations_query(rules: list, source: sql.Composable) -> sql.Composed:
    """(response_id, revision, rule_id, message) for every violation of `rules` among `source`'s rows.

    `source` is a relation with columns id, revision, answers. Each verdict is computed once per response;
    only responses breaking some rule go on to the per-rule rows that carry the messages.
    """
    verdict_columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(verdict(r.tree), sql.Identifier(f"verdict:{r.id}")) for r in rules)
    broken = sql.SQL(" OR ").join(sql.SQL("{} IS FALSE").format(sql.Identifier(f"verdict:{r.id}")) for r in rules)
    rows = sql.SQL(", ").join(
        sql.SQL("({}, CASE WHEN {} IS FALSE THEN {} END)").format(
            sql.Literal(r.id), sql.Identifier(f"verdict:{r.id}"), message(r.message_parts))
        for r in rules
    )
    return sql.SQL(
        """SELECT t.id AS response_id, t.revision, v.rule_id, v.message
             FROM (SELECT id, revision, answers, {verdicts} FROM ({typed}) typed OFFSET 0) t
            CROSS JOIN LATERAL (VALUES {rows}) AS v(rule_id, message)
            WHERE ({broken}) AND v.message IS NOT NULL"""
    ).format(verdicts=verdict_columns, typed=typed_relation([r.tree for r in rules], source), rows=rows, broken=broken)


def verdicts_query(rules: list, source: sql.Composable) -> sql.Composed:
    """(id, rule_id, verdict) for every rule and row: what the property test compares with Python."""
    rows = sql.SQL(", ").join(sql.SQL("({}, {})").format(sql.Literal(r.id), verdict(r.tree)) for r in rules)
    return sql.SQL(
        """SELECT t.id, v.rule_id, v.verdict
             FROM ({typed}) t CROSS JOIN LATERAL (VALUES {rows}) AS v(rule_id, verdict)"""
    ).format(typed=typed_relation([r.tree for r in rules], source), rows=rows)

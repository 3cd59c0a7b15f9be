"""The regular expressions `matches` accepts: a subset on which Python `re` and PostgreSQL `~` agree.

The subset: literal characters, `.`, `^`, `$`, groups `( )` and `(?: )`, `|`, the quantifiers `* + ?`
and `{m}`, `{m,}`, `{m,n}` (m, n <= 255, PostgreSQL's limit), bracket classes `[a-z]`, `[^0-9]`, and the
escapes `\\d \\D \\s \\S \\w \\W \\n \\t` plus a backslash before any punctuation. `\\d`, `\\s`, `\\w` mean
ASCII digits, ASCII white space and `[A-Za-z0-9_]` in both engines (each is written out as a class,
since the engines' own notions of a Unicode digit or letter differ). Matching is a search anywhere
in the answer, case-sensitive; `.` matches any character including a newline; `$` is the very end.
"""

from __future__ import annotations

import re

SPECIAL = set("\\^$.|?*+()[]{}")
CLASS_ESCAPES = {"d": "0-9", "s": " \\t\\n\\r\\f\\v", "w": "A-Za-z0-9_"}
CHARACTER_ESCAPES = {"n": "\n", "t": "\t"}
MAX_REPEAT = 255
BOUND = re.compile(r"\{(\d+)(,(\d*))?\}")


class RegexError(ValueError):
    pass


def _py_literal(ch: str) -> str:
    return re.escape(ch)


def _sql_literal(ch: str) -> str:
    return "\\" + ch if ch in SPECIAL else ch


def _bracket_char(ch: str) -> tuple[str, str]:
    py = "\\" + ch if not ch.isalnum() and ch.isascii() else ch
    sql = "\\" + ch if ch in "\\]-^[" else ch
    return py, sql


def translate(pattern: str) -> tuple[str, str]:
    """(Python pattern, PostgreSQL pattern) for a pattern in the subset, or RegexError saying what is not."""
    py, sql = [], []
    depth, pos, can_repeat = 0, 0, False
    while pos < len(pattern):
        ch = pattern[pos]
        if ch == "\\":
            if pos + 1 == len(pattern):
                raise RegexError("ends with a lone backslash")
            nxt = pattern[pos + 1]
            if nxt.lower() in CLASS_ESCAPES:
                negate = "^" if nxt.isupper() else ""
                py.append(f"[{negate}{CLASS_ESCAPES[nxt.lower()]}]")
                sql.append(f"[{negate}{CLASS_ESCAPES[nxt.lower()]}]")
            elif nxt in CHARACTER_ESCAPES:
                py.append(_py_literal(CHARACTER_ESCAPES[nxt]))
                sql.append(CHARACTER_ESCAPES[nxt])
            elif nxt.isalnum() or not nxt.isascii():
                raise RegexError(f"\\{nxt} is not supported (use \\d \\s \\w, their capitals, \\n, \\t or escape punctuation)")
            else:
                py.append(_py_literal(nxt))
                sql.append(_sql_literal(nxt))
            pos, can_repeat = pos + 2, True
        elif ch == "[":
            pos = _bracket(pattern, pos, py, sql)
            can_repeat = True
        elif ch in "*+?":
            if not can_repeat:
                raise RegexError(f"{ch!r} at position {pos + 1} has nothing to repeat")
            py.append(ch)
            sql.append(ch)
            pos, can_repeat = pos + 1, False
        elif ch == "{":
            bound = BOUND.match(pattern, pos)
            if bound is None:
                raise RegexError(f"'{{' at position {pos + 1} must be a repeat count like {{2}}, {{2,}} or {{2,5}} (write \\{{ for a brace)")
            if not can_repeat:
                raise RegexError(f"the repeat count at position {pos + 1} has nothing to repeat")
            low, high = int(bound.group(1)), bound.group(3)
            if low > MAX_REPEAT or (high and int(high) > MAX_REPEAT):
                raise RegexError(f"repeat counts above {MAX_REPEAT} are not supported")
            if high and int(high) < low:
                raise RegexError(f"repeat count {bound.group()} goes downwards")
            py.append(bound.group())
            sql.append(bound.group())
            pos, can_repeat = bound.end(), False
        elif ch == "}":
            raise RegexError(f"unmatched '}}' at position {pos + 1} (write \\}} for a brace)")
        elif ch == "(":
            if pattern.startswith("(?:", pos):
                py.append("(?:")
                sql.append("(?:")
                pos += 3
            elif pattern.startswith("(?", pos):
                raise RegexError(f"'(?' at position {pos + 1}: only (?: ) groups are supported")
            else:
                py.append("(")
                sql.append("(")
                pos += 1
            depth, can_repeat = depth + 1, False
        elif ch == ")":
            if depth == 0:
                raise RegexError(f"unmatched ')' at position {pos + 1}")
            py.append(")")
            sql.append(")")
            pos, depth, can_repeat = pos + 1, depth - 1, True
        elif ch in "^$|":
            # Python's `$` also matches before a final newline; `\Z` is the very end, like PostgreSQL's `$`.
            py.append("\\Z" if ch == "$" else ch)
            sql.append(ch)
            pos, can_repeat = pos + 1, False
        elif ch == ".":
            py.append(".")
            sql.append(".")
            pos, can_repeat = pos + 1, True
        else:
            py.append(_py_literal(ch))
            sql.append(_sql_literal(ch))
            pos, can_repeat = pos + 1, True
    if depth:
        raise RegexError("a '(' is never closed")
    python_pattern = "".join(py)
    try:
        re.compile(python_pattern, re.DOTALL)
    except re.error as err:  # pragma: no cover - the subset should not produce this
        raise RegexError(str(err)) from None
    return python_pattern, "".join(sql)


def _bracket(pattern: str, start: int, py: list[str], sql: list[str]) -> int:
    """Translate one `[...]` starting at `start`; return the position after it."""
    pos = start + 1
    negate = pattern.startswith("^", pos)
    if negate:
        pos += 1
    py_items, sql_items, previous = [], [], None  # previous: the last single character, for ranges
    while True:
        if pos >= len(pattern):
            raise RegexError(f"the '[' at position {start + 1} is never closed")
        ch = pattern[pos]
        if ch == "]":
            break
        if ch == "[":
            raise RegexError(f"write \\[ for a '[' inside a class (position {pos + 1})")
        if ch == "\\":
            if pos + 1 == len(pattern):
                raise RegexError("ends with a lone backslash")
            nxt = pattern[pos + 1]
            if nxt in CLASS_ESCAPES:
                py_items.append(CLASS_ESCAPES[nxt])
                sql_items.append(CLASS_ESCAPES[nxt])
                previous, pos = None, pos + 2
                continue
            if nxt in CHARACTER_ESCAPES:
                literal = CHARACTER_ESCAPES[nxt]
            elif nxt.isalnum() or not nxt.isascii():
                raise RegexError(f"\\{nxt} is not supported inside a class")
            else:
                literal = nxt
            pos += 2
        elif ch == "-":
            end = pattern[pos + 1] if pos + 1 < len(pattern) else ""
            if previous is None or end in ("", "]", "\\", "["):
                raise RegexError(f"write \\- for a '-' that is not a range like a-z (position {pos + 1})")
            if ord(end) < ord(previous):
                raise RegexError(f"range {previous}-{end} goes downwards")
            py_items.append("-")
            sql_items.append("-")
            py_end, sql_end = _bracket_char(end)
            py_items.append(py_end)
            sql_items.append(sql_end)
            previous, pos = None, pos + 2
            continue
        else:
            literal, pos = ch, pos + 1
        py_char, sql_char = _bracket_char(literal)
        py_items.append(py_char)
        sql_items.append(sql_char)
        previous = literal
    if not py_items:
        raise RegexError(f"the class at position {start + 1} is empty")
    prefix = "^" if negate else ""
    py.append(f"[{prefix}{''.join(py_items)}]")
    sql.append(f"[{prefix}{''.join(sql_items)}]")
    return pos + 1

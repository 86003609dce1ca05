"""What SQL from outside may be: `agentlog sql` runs one read-only query, `export
training --where` one condition. DuckDB's own parser decides (the statements it would
run, the tree of the query), not patterns over the text, so what is checked is what
would run.

This is the first of two walls: beneath it the views' DuckDB is locked down (no files
but the archive's, no extensions, configuration locked, the sink opened read-only; see
`agentlog.analytics.views`), so a query that got past the parser still could not read,
write or change anything else.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

from agentlog.display import visible
from agentlog.errors import ExportError

__all__ = ["one_condition", "one_query"]


def _parser() -> duckdb.DuckDBPyConnection:
    """A connection that only parses: nothing attached, no files, no extensions."""
    return duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        },
    )


def _statements(connection: duckdb.DuckDBPyConnection, text: str) -> list[duckdb.Statement]:
    try:
        return list(connection.extract_statements(text))
    except duckdb.Error as exc:
        raise ExportError(f"SQL: {_first_line(exc)}") from None


def one_query(text: str) -> str:
    """`text` if it is exactly one SELECT (a WITH ... SELECT included), else ExportError
    saying what it is instead."""
    with _parser() as connection:
        statements = _statements(connection, text)
    if not statements:  # "", or only a comment
        raise ExportError(
            'SQL: the query holds no statement; ask e.g. "SELECT count(*) FROM events"'
        )
    if len(statements) != 1:
        raise ExportError(
            f"SQL: one query is run, a SELECT (or WITH ... SELECT); this text holds "
            f"{len(statements)} statements"
        )
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ExportError(
            f"SQL: only a SELECT (or WITH ... SELECT) is run, read-only; this is a statement "
            f"of type {kind.name}"
        )
    return text


# What `SELECT * FROM conversations WHERE (<condition>)` parses to, but for the
# condition: anything else (a second statement, ORDER BY, LIMIT, UNION, GROUP BY...)
# means the text was more than a condition.
_TEMPLATE: dict[str, Any] = {
    "type": "SELECT_NODE",
    "modifiers": [],
    "cte_map": {"map": []},
    "group_expressions": [],
    "group_sets": [],
    "aggregate_handling": "STANDARD_HANDLING",
    "having": None,
    "sample": None,
    "qualify": None,
}


def one_condition(condition: str, table: str = "conversations") -> str:
    """The condition as it is safe to put after WHERE (in parentheses, on a line of its
    own so that a trailing `--` comments nothing out), if `condition` is exactly one SQL
    expression; else ExportError naming the flag."""
    if not condition.strip():
        raise _not_a_condition(condition, "it is empty")
    wrapped = f"({condition}\n)"
    query = f"SELECT * FROM {table} WHERE {wrapped}"
    with _parser() as connection:
        try:
            statements = _statements(connection, query)
        except ExportError:
            raise _not_a_condition(condition, _parse_error(connection, table, condition)) from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise _not_a_condition(condition, "it holds more than one statement")
        row = connection.execute("SELECT json_serialize_sql(?)", [query]).fetchone()
    tree: dict[str, Any] = orjson.loads(row[0]) if row else {"error": True}
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        raise _not_a_condition(condition, str(tree.get("error_message", "not one query")))
    node = tree["statements"][0]["node"]
    source = node.get("from_table") or {}
    plain = all(node.get(key) == value for key, value in _TEMPLATE.items())
    star = [item.get("class") for item in node.get("select_list", [])] == ["STAR"]
    same_table = source.get("type") == "BASE_TABLE" and source.get("table_name") == table
    if not (plain and star and same_table and node.get("where_clause") is not None):
        raise _not_a_condition(condition, "it is more than one expression")
    return wrapped


def _parse_error(connection: duckdb.DuckDBPyConnection, table: str, condition: str) -> str:
    """Why `condition` does not parse, as the parser says of the user's text alone: the
    parentheses it is wrapped in are agentlog's, never to be named (`near ")"`)."""
    try:
        alone = connection.extract_statements(f"SELECT * FROM {table} WHERE {condition}")
    except duckdb.Error as exc:
        return _first_line(exc).replace("at end of input", "at the end of the condition")
    if len(alone) > 1:  # `1=1; DROP ...`: a second statement, which no parenthesis holds
        return "it holds more than one statement"
    return "its parentheses do not match"


def _not_a_condition(condition: str, why: str) -> ExportError:
    return ExportError(
        f"--where {visible(repr(condition))}: a condition on the conversations is one SQL "
        f"expression ({why})"
    )


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

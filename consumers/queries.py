"""Reading projected state: conversations, their tool calls, and projection progress."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentlog.consumers.projection import Projection, Row, Table
from agentlog.consumers.projections.conversation_index import TABLE as INDEX_TABLE
from agentlog.consumers.projections.conversation_index import ConversationIndex
from agentlog.consumers.projections.conversations import TABLE as CONVERSATIONS_TABLE
from agentlog.consumers.projections.conversations import Conversations
from agentlog.consumers.projections.tool_calls import TABLE as TOOL_CALLS_TABLE
from agentlog.consumers.projections.tool_calls import ToolCalls
from agentlog.consumers.sinks import Sink
from agentlog.consumers.sinks.sql import quoted, select_columns
from agentlog.errors import SinkError


def _table(projection: type[Projection], name: str) -> Table:
    return next(t for t in projection.tables if t.name == name)


CONVERSATIONS = _table(Conversations, CONVERSATIONS_TABLE)
TOOL_CALLS = _table(ToolCalls, TOOL_CALLS_TABLE)
INDEX = _table(ConversationIndex, INDEX_TABLE)


@dataclass(frozen=True)
class ConversationFilter:
    status: str | None = None
    agent: str | None = None
    since_micros: int | None = None
    until_micros: int | None = None
    limit: int = 20


def _rows(
    sink: Sink, table: Table, where: list[str], params: list[Any], tail: str = ""
) -> list[Row]:
    sql = f"SELECT {select_columns(sink.dialect, table)} FROM {quoted(table.name)} AS t"
    if where:
        sql += " WHERE " + " AND ".join(where)
    try:
        found = sink.query(sql + tail, params)
    except Exception as exc:
        if "does not exist" in str(exc) or "not found" in str(exc).lower():
            raise SinkError(
                f"{sink.description} has no {table.name} table yet: run `agentlog project run`"
            ) from None
        raise
    return [dict(zip(table.columns, values, strict=True)) for values in found]


def list_conversations(sink: Sink, where: ConversationFilter) -> list[Row]:
    d = sink.dialect
    conditions: list[str] = []
    params: list[Any] = []
    if where.status:
        conditions.append(f"t.status = {d.param('text')}")
        params.append(where.status)
    if where.agent:
        conditions.append(d.array_contains("t.agents"))
        params.append(where.agent)
    if where.since_micros is not None:
        conditions.append(f"t.last_activity >= {d.timestamp_from_micros(d.param('bigint'))}")
        params.append(where.since_micros)
    if where.until_micros is not None:
        conditions.append(f"t.first_activity < {d.timestamp_from_micros(d.param('bigint'))}")
        params.append(where.until_micros)
    tail = f" ORDER BY t.last_activity DESC, t.conversation_id LIMIT {int(where.limit)}"
    return _rows(sink, CONVERSATIONS, conditions, params, tail)


def conversation(sink: Sink, conversation_id: str) -> tuple[Row | None, list[Row], Row | None]:
    """(conversation row, its tool calls in request order, its index row)."""
    p = sink.dialect.param("text")
    found = _rows(sink, CONVERSATIONS, [f"t.conversation_id = {p}"], [conversation_id])
    calls = _rows(
        sink,
        TOOL_CALLS,
        [f"t.conversation_id = {p}"],
        [conversation_id],
        " ORDER BY t.requested_at, t.tool_call_id",
    )
    index = _rows(sink, INDEX, [f"t.conversation_id = {p}"], [conversation_id])
    return (found[0] if found else None, calls, index[0] if index else None)

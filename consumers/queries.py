"""Reading projected state: conversations, their tool calls, and where they sit in the log.

Through `Sink.select`, so every sink answers them, the memory sink included.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.consumers.projection import Projection, Row, Table
from agentlog.consumers.projections.conversation_index import TABLE as INDEX_TABLE
from agentlog.consumers.projections.conversation_index import ConversationIndex
from agentlog.consumers.projections.conversations import TABLE as CONVERSATIONS_TABLE
from agentlog.consumers.projections.conversations import Conversations
from agentlog.consumers.projections.tool_calls import TABLE as TOOL_CALLS_TABLE
from agentlog.consumers.projections.tool_calls import ToolCalls
from agentlog.consumers.sinks import Sink, Where


def _table(projection: type[Projection], name: str) -> Table:
    return next(t for t in projection.tables if t.name == name)


CONVERSATIONS = _table(Conversations, CONVERSATIONS_TABLE)
TOOL_CALLS = _table(ToolCalls, TOOL_CALLS_TABLE)
INDEX = _table(ConversationIndex, INDEX_TABLE)


@dataclass(frozen=True)
class ConversationFilter:
    """Which conversations to list; every field that is set must hold."""

    status: str | None = None  # active, ended
    outcome: str | None = None  # resolved, escalated, abandoned, ...: how it ended
    agent: str | None = None  # took part
    since_micros: int | None = None  # active at or after
    until_micros: int | None = None  # started before
    limit: int | None = 20


def list_conversations(sink: Sink, where: ConversationFilter) -> list[Row]:
    """Matching conversations, the most recently active first."""
    conditions = []
    if where.status:
        conditions.append(Where("status", "=", where.status))
    if where.outcome:
        conditions.append(Where("outcome", "=", where.outcome))
    if where.agent:
        conditions.append(Where("agents", "has", where.agent))
    if where.since_micros is not None:
        conditions.append(Where("last_activity", ">=", where.since_micros))
    if where.until_micros is not None:
        conditions.append(Where("first_activity", "<", where.until_micros))
    return sink.select(
        CONVERSATIONS,
        conditions,
        order_by=("-last_activity", "conversation_id"),
        limit=where.limit,
    )


def conversation(sink: Sink, conversation_id: str) -> tuple[Row | None, list[Row], Row | None]:
    """(conversation row, its tool calls in request order, its index row)."""
    mine = [Where("conversation_id", "=", conversation_id)]
    found = sink.select(CONVERSATIONS, mine)
    calls = sink.select(TOOL_CALLS, mine, order_by=("requested_at", "tool_call_id"))
    index = sink.select(INDEX, mine)
    return (found[0] if found else None, calls, index[0] if index else None)

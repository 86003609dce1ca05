"""What the conversation state says of a conversation as a whole: was it escalated, and
which of its tool calls finally failed.

Readers that ask these questions rather than show the rows (the training export's
`--escalated` and `--failed-tool-calls`, its weights) take the answers from here, so
they are the projector's: the same fold, over the same handlers of `conversations` and
`tool_calls`, read by `escalated` and `finally_failed`. A reader that already holds a
conversation's rows asks `verdict_of`; one that holds its events asks `verdicts`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentlog.consumers.fold import Plan, fold
from agentlog.consumers.projection import RecordedEvent, Row
from agentlog.consumers.projections.conversations import TABLE as CONVERSATIONS
from agentlog.consumers.projections.conversations import Conversations, escalated
from agentlog.consumers.projections.tool_calls import TABLE as TOOL_CALLS
from agentlog.consumers.projections.tool_calls import ToolCalls, finally_failed

# The event types whose handlers change what a verdict reads (`escalations`, `outcome`,
# a call's `status`). Folding only these gives the verdict folding everything gives, so
# a reader of many events may pass just these; a handler that comes to change one of
# those columns on another event type must add its type here (a test folds both ways).
DECIDED_BY = frozenset(
    {
        "escalation",
        "conversation_ended",
        "tool_call_requested",
        "tool_call_completed",
        "tool_call_failed",
    }
)


@dataclass(frozen=True)
class Verdict:
    """One conversation's answers. `failed_calls`: the ids its tool calls were recorded
    with, of those that finally failed."""

    escalated: bool = False
    failed_calls: frozenset[str] = frozenset()


# A conversation with no event of `DECIDED_BY`: nothing escalated, nothing failed.
NOTHING_DECIDED = Verdict()

_PLAN = Plan([Conversations(), ToolCalls()])


def verdict_of(conversation: Row | None, tool_calls: Iterable[Row]) -> Verdict:
    """The verdict on a conversation from its rows: its `conversations` row (None when it
    has none) and its `tool_calls` rows."""
    failed = frozenset(row["tool_call_id"] for row in tool_calls if finally_failed(row))
    return Verdict(conversation is not None and escalated(conversation), failed)


def verdicts(events: Iterable[RecordedEvent]) -> dict[str, Verdict]:
    """The verdict on each conversation of `events` (in log order; all of them, or only
    those of `DECIDED_BY`), by conversation id: a conversation absent has
    `NOTHING_DECIDED`."""
    folded = fold(_PLAN, events, handler_attempts=1)
    calls: dict[str, list[Row]] = {}
    for (conversation_id, _), row in folded.changed[TOOL_CALLS].items():
        calls.setdefault(conversation_id, []).append(row)
    conversations = folded.changed[CONVERSATIONS]
    return {
        conversation_id: verdict_of(row, calls.get(conversation_id, ()))
        for (conversation_id,), row in conversations.items()
    }

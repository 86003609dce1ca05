"""`conversations`: the state of each conversation.

`status` says whether it is still going (`active`) or over (`ended`); `outcome` says
how it ended (`resolved`, `escalated`, `abandoned`, `failed`, ... as the application
recorded it), and stays empty while it is active. An escalation counts in
`escalations` whether the conversation ends escalated or not; `escalated(row)` is what
every reader of this state (the training export's `--escalated`, too) calls escalated.
"""

from __future__ import annotations

from agentlog.consumers.projection import Projection, RecordedEvent, Row, State, Table, handles
from agentlog.consumers.projections.activity import Activity
from agentlog.events import EVENT_TYPES

TABLE = "agentlog_conversations"
ACTIVE = "active"
ENDED = "ended"
STATUSES = (ACTIVE, ENDED)
ESCALATED = "escalated"  # the outcome of a conversation a person took over
ACTIVITY = Activity(first="first_activity", last="last_activity", count="events")


def _key(event: RecordedEvent) -> tuple[str]:
    return (event.conversation_id,)


def _row(event: RecordedEvent, state: State) -> Row:
    return state.row(TABLE, (event.conversation_id,))


def _join(row: Row, agent: str | None) -> None:
    """`agent` takes part in the conversation (in the order agents first appeared)."""
    if agent and agent not in row["agents"]:
        row["agents"] = [*row["agents"], agent]


def escalated(row: Row) -> bool:
    """Whether the conversation was escalated: it recorded an escalation, or it ended
    `escalated` (a handoff between agents is no escalation)."""
    return bool(row["escalations"]) or row["outcome"] == ESCALATED


class Conversations(Projection):
    name = "conversations"
    tables = (
        Table(
            TABLE,
            key=("conversation_id",),
            columns={
                "conversation_id": "text",
                "status": "text",
                "channel": "text",
                "user_id": "text",
                "intent": "text",
                "current_agent": "text",
                "agents": "text[]",
                "turns": "bigint",
                "open_tool_calls": "bigint",
                "tool_calls": "bigint",
                "tool_errors": "bigint",
                "escalations": "bigint",
                "llm_calls": "bigint",
                "input_tokens": "bigint",
                "output_tokens": "bigint",
                "outcome": "text",
                "first_activity": "timestamp",
                "last_activity": "timestamp",
                "events": "bigint",
            },
            key_of=_key,
            defaults={"status": ACTIVE},
        ),
    )

    @handles(*EVENT_TYPES)
    def activity(self, event: RecordedEvent, state: State) -> None:
        """Every event: the conversation's times and event count, and the agent that
        wrote it, for the events that name one."""
        row = _row(event, state)
        ACTIVITY.fold(row, event)
        _join(row, event.payload.get("agent"))

    @handles("conversation_started")
    def started(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["channel"] = event.payload["channel"]
        row["user_id"] = event.payload["user_id"]

    @handles("conversation_ended")
    def ended(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["status"] = ENDED
        row["outcome"] = event.payload["outcome"]

    @handles("user_message")
    def user_message(self, event: RecordedEvent, state: State) -> None:
        _row(event, state)["turns"] += 1

    @handles("agent_message")
    def agent_message(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["turns"] += 1
        row["current_agent"] = event.payload["agent"]

    @handles("llm_call")
    def llm_call(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        body = event.payload
        row["llm_calls"] += 1
        row["input_tokens"] += body["input_tokens"]
        row["output_tokens"] += body["output_tokens"]
        row["current_agent"] = body["agent"]

    @handles("tool_call_requested")
    def tool_call_requested(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["open_tool_calls"] += 1
        if event.payload["attempt"] == 1:  # a retry is the same call again
            row["tool_calls"] += 1

    @handles("tool_call_completed")
    def tool_call_completed(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["open_tool_calls"] = max(0, row["open_tool_calls"] - 1)

    @handles("tool_call_failed")
    def tool_call_failed(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        row["open_tool_calls"] = max(0, row["open_tool_calls"] - 1)
        row["tool_errors"] += 1

    @handles("intent_identified")
    def intent_identified(self, event: RecordedEvent, state: State) -> None:
        _row(event, state)["intent"] = event.payload["intent"]

    @handles("handoff")
    def handoff(self, event: RecordedEvent, state: State) -> None:
        row = _row(event, state)
        _join(row, event.payload["from_agent"])
        _join(row, event.payload["to_agent"])
        row["current_agent"] = event.payload["to_agent"]

    @handles("escalation")
    def escalation(self, event: RecordedEvent, state: State) -> None:
        _row(event, state)["escalations"] += 1

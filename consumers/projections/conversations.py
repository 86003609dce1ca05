"""`conversations`: the state of each conversation."""

from __future__ import annotations

from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles

TABLE = "agentlog_conversations"


def _key(event: RecordedEvent) -> tuple[str]:
    return (event.conversation_id,)


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
            defaults={"status": "active"},
        ),
    )

    @handles(
        "conversation_started",
        "conversation_ended",
        "system_prompt",
        "tools_declared",
        "user_message",
        "agent_message",
        "llm_call",
        "tool_call_requested",
        "tool_call_completed",
        "tool_call_failed",
        "intent_identified",
        "handoff",
        "escalation",
        "saga_step_started",
        "saga_step_completed",
        "saga_step_compensated",
    )
    def on_event(self, event: RecordedEvent, state: State) -> None:
        row = state.row(TABLE, (event.conversation_id,))
        row["events"] += 1
        if row["first_activity"] is None or event.occurred_at < row["first_activity"]:
            row["first_activity"] = event.occurred_at
        if row["last_activity"] is None or event.occurred_at > row["last_activity"]:
            row["last_activity"] = event.occurred_at
        body = event.payload
        kind = event.event_type
        agent = body.get("agent")
        if agent and agent not in row["agents"]:
            row["agents"] = [*row["agents"], agent]
        if kind == "conversation_started":
            row["channel"] = body["channel"]
            row["user_id"] = body["user_id"]
        elif kind in ("user_message", "agent_message"):
            row["turns"] += 1
            if kind == "agent_message":
                row["current_agent"] = agent
        elif kind == "llm_call":
            row["llm_calls"] += 1
            row["input_tokens"] += body["input_tokens"]
            row["output_tokens"] += body["output_tokens"]
            row["current_agent"] = agent
        elif kind == "tool_call_requested":
            row["open_tool_calls"] += 1
            if body["attempt"] == 1:
                row["tool_calls"] += 1
        elif kind == "tool_call_completed":
            row["open_tool_calls"] = max(0, row["open_tool_calls"] - 1)
        elif kind == "tool_call_failed":
            row["open_tool_calls"] = max(0, row["open_tool_calls"] - 1)
            row["tool_errors"] += 1
        elif kind == "intent_identified":
            row["intent"] = body["intent"]
        elif kind == "handoff":
            row["current_agent"] = body["to_agent"]
            if body["to_agent"] not in row["agents"]:
                row["agents"] = [*row["agents"], body["to_agent"]]
            if body["from_agent"] not in row["agents"]:
                row["agents"] = [*row["agents"], body["from_agent"]]
        elif kind == "escalation":
            row["escalations"] += 1
            if row["status"] != "ended":
                row["status"] = "escalated"
        elif kind == "conversation_ended":
            row["status"] = "ended"
            row["outcome"] = body["outcome"]

"""`tool_calls`: one row per tool call — tool, arguments, status, attempts, latency, error."""

from __future__ import annotations

from agentlog.consumers.projection import Projection, RecordedEvent, Row, State, Table, handles

TABLE = "agentlog_tool_calls"
REQUESTED = "requested"
COMPLETED = "completed"
FAILED = "failed"


def _key(event: RecordedEvent) -> tuple[str, str] | None:
    call_id = event.payload.get("tool_call_id")
    return None if call_id is None else (event.conversation_id, call_id)


def finally_failed(row: Row) -> bool:
    """Whether the call finally failed: its latest attempt failed and no retry of it was
    requested since (a failure followed by a retry that completes, or that is still
    under way, is not a failed call)."""
    return bool(row["status"] == FAILED)


class ToolCalls(Projection):
    name = "tool_calls"
    tables = (
        Table(
            TABLE,
            key=("conversation_id", "tool_call_id"),
            columns={
                "conversation_id": "text",
                "tool_call_id": "text",
                "tool_name": "text",
                "agent": "text",
                "arguments_json": "text",
                "status": "text",
                "attempts": "bigint",
                "failures": "bigint",
                "latency_ms": "double",
                "total_duration_ms": "double",
                "result_json": "text",
                "error_type": "text",
                "error_message": "text",
                "requested_at": "timestamp",
                "finished_at": "timestamp",
            },
            key_of=_key,
        ),
    )

    @handles("tool_call_requested")
    def requested(self, event: RecordedEvent, state: State) -> None:
        body = event.payload
        row = state.row(TABLE, (event.conversation_id, body["tool_call_id"]))
        row["tool_name"] = body["tool_name"]
        row["agent"] = body["agent"] or row["agent"]
        row["arguments_json"] = body["arguments_json"]
        row["status"] = REQUESTED
        row["attempts"] = max(row["attempts"], body["attempt"])
        if row["requested_at"] is None:
            row["requested_at"] = event.occurred_at

    @handles("tool_call_completed")
    def completed(self, event: RecordedEvent, state: State) -> None:
        row = _finished(event, state)
        row["status"] = COMPLETED
        row["result_json"] = event.payload["result_json"]

    @handles("tool_call_failed")
    def failed(self, event: RecordedEvent, state: State) -> None:
        row = _finished(event, state)
        row["status"] = FAILED
        row["failures"] += 1
        row["error_type"] = event.payload["error_type"]
        row["error_message"] = event.payload["error_message"]


def _finished(event: RecordedEvent, state: State) -> Row:
    """What a completed and a failed attempt both change."""
    body = event.payload
    row = state.row(TABLE, (event.conversation_id, body["tool_call_id"]))
    row["tool_name"] = body["tool_name"]
    row["attempts"] = max(row["attempts"], body["attempt"])
    row["latency_ms"] = body["duration_ms"]
    row["total_duration_ms"] += body["duration_ms"]
    row["finished_at"] = event.occurred_at
    return row

"""`agentlog tail`'s one line per event shows durations as people read them."""

from __future__ import annotations

from agentlog.render import one_line


def test_durations_and_latencies_are_rounded() -> None:
    completed = {
        "occurred_at": 1_764_000_000_000_000,
        "conversation_id": "conv-42",
        "payload": (
            "agentlog.ToolCallCompleted",
            {
                "tool_name": "lookup_invoice",
                "tool_call_id": "call-1",
                "attempt": 1,
                "duration_ms": 0.007121000180632109,
            },
        ),
    }
    line = one_line(completed, 0, 7)
    assert line.endswith("duration_ms=0.007"), line
    llm = {
        "occurred_at": 1_764_000_000_000_000,
        "conversation_id": "conv-42",
        "payload": (
            "agentlog.LlmCall",
            {"agent": "billing", "request_model": "gpt-4o", "latency_ms": 640.123456789},
        ),
    }
    assert one_line(llm, 0, 8).endswith("latency_ms=640.123")

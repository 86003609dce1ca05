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


def _declared(agent: str) -> dict:  # type: ignore[type-arg]
    return {
        "occurred_at": 1_764_000_000_000_000,
        "conversation_id": "conv-42",
        "payload": (
            "agentlog.ToolsDeclared",
            {"agent": agent, "tools": [{"name": "lookup_invoice"}, {"name": "refund"}]},
        ),
    }


def test_tools_declared_by_no_agent_show_no_empty_agent() -> None:
    # @recorder.tool declares its tool for no agent in particular: nothing to show.
    line = one_line(_declared(""), 0, 3)
    assert "agent=" not in line, line
    assert line.endswith("tools_declared tools=lookup_invoice,refund"), line
    assert one_line(_declared("billing"), 0, 3).endswith(
        "tools_declared agent=billing tools=lookup_invoice,refund"
    )


def test_a_transcript_of_tools_declared_by_no_agent_starts_with_the_tools() -> None:
    from agentlog.consumers.projection import RecordedEvent
    from agentlog.replay.transcript import summary

    def declared(agent: str) -> RecordedEvent:
        return RecordedEvent(
            "e-1", "conv-42", 1_764_000_000_000_000, "tools_declared",
            {"agent": agent, "tools": [{"name": "lookup_invoice"}]},
            {}, None, None, None, "agentlog.events", 0, 3,
        )  # fmt: skip

    assert summary(declared("")) == "lookup_invoice"
    assert summary(declared("billing")) == "billing: lookup_invoice"

"""What the built-in projections must contain, computed from the raw topic by plain code
that shares nothing with agentlog's reader or projections (fastavro + the .avsc file)."""

from __future__ import annotations

import io
import json
from collections import defaultdict
from pathlib import Path

from fastavro import parse_schema, schemaless_reader

AVSC = Path(__file__).parent.parent / "schemas" / "v1" / "agentlog.Event.avsc"
_PARSED = parse_schema(json.loads(AVSC.read_text()))


def decode_plain(value: bytes) -> dict | None:
    """The event, or None for anything that is not a v1 single-object record."""
    if not value or value[:2] != b"\xc3\x01":
        return None
    try:
        return schemaless_reader(io.BytesIO(value[10:]), _PARSED, return_record_name=True)
    except Exception:
        return None


def fold(records) -> dict:
    """records: kafka-python ConsumerRecords of the events topic."""
    seen: set[str] = set()
    conversations: dict[str, dict] = {}
    calls: dict[tuple[str, str], dict] = {}
    index: dict[str, dict] = {}
    counts: dict[str, int] = defaultdict(int)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode_plain(record.value)
        if event is None or event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        cid = event["conversation_id"]
        kind = event["payload"][0].split(".")[1]
        body = event["payload"][1]
        when = int(event["occurred_at"].timestamp() * 1_000_000)
        c = conversations.setdefault(
            cid,
            {
                "status": "active",
                "outcome": None,
                "turns": 0,
                "llm_calls": 0,
                "input_tokens": 0,
                "output_tokens": 0,
                "tool_calls": 0,
                "tool_errors": 0,
                "escalations": 0,
                "open_tool_calls": 0,
                "events": 0,
                "agents": set(),
            },
        )
        c["events"] += 1
        if body.get("agent"):
            c["agents"].add(body["agent"])
        if kind in ("UserMessage", "AgentMessage"):
            c["turns"] += 1
        elif kind == "LlmCall":
            c["llm_calls"] += 1
            c["input_tokens"] += body["input_tokens"]
            c["output_tokens"] += body["output_tokens"]
        elif kind == "ToolCallRequested":
            c["open_tool_calls"] += 1
            c["tool_calls"] += body["attempt"] == 1
        elif kind in ("ToolCallCompleted", "ToolCallFailed"):
            c["open_tool_calls"] -= 1
            c["tool_errors"] += kind == "ToolCallFailed"
        elif kind == "Handoff":
            c["agents"] |= {body["from_agent"], body["to_agent"]}
        elif kind == "Escalation":
            c["escalations"] += 1
            if c["status"] != "ended":
                c["status"] = "escalated"
        elif kind == "ConversationEnded":
            c["status"] = "ended"
            c["outcome"] = body["outcome"]
        if kind.startswith("ToolCall"):
            call = calls.setdefault((cid, body["tool_call_id"]), {"attempts": 0, "failures": 0})
            call["tool_name"] = body["tool_name"]
            call["attempts"] = max(call["attempts"], body["attempt"])
            call["status"] = {
                "ToolCallRequested": "requested",
                "ToolCallCompleted": "completed",
                "ToolCallFailed": "failed",
            }[kind]
            call["failures"] += kind == "ToolCallFailed"
        entry = index.setdefault(
            cid,
            {
                "partition": record.partition,
                "first_offset": record.offset,
                "event_count": 0,
                "first_time": when,
            },
        )
        entry["event_count"] += 1
        entry["last_offset"] = record.offset
        entry["last_time"] = when
        counts[kind] += 1
    return {"conversations": conversations, "tool_calls": calls, "index": index, "seen": seen}


def assert_sink_matches(sink, expected: dict) -> None:
    """Compare the sink's built-in projection tables with the independent fold."""
    got = {
        row[0]: row
        for row in sink.query(
            "SELECT conversation_id, status, outcome, turns, llm_calls, input_tokens, "
            "output_tokens, tool_calls, tool_errors, escalations, open_tool_calls, events, agents "
            "FROM agentlog_conversations"
        )
    }
    assert set(got) == set(expected["conversations"])
    for cid, want in expected["conversations"].items():
        row = got[cid]
        assert row[1:12] == (
            want["status"],
            want["outcome"],
            want["turns"],
            want["llm_calls"],
            want["input_tokens"],
            want["output_tokens"],
            want["tool_calls"],
            want["tool_errors"],
            want["escalations"],
            want["open_tool_calls"],
            want["events"],
        ), cid
        assert set(row[12]) == want["agents"], cid
    calls = {
        (r[0], r[1]): r[2:]
        for r in sink.query(
            "SELECT conversation_id, tool_call_id, tool_name, attempts, status, failures "
            "FROM agentlog_tool_calls"
        )
    }
    assert calls == {
        k: (v["tool_name"], v["attempts"], v["status"], v["failures"])
        for k, v in expected["tool_calls"].items()
    }
    index = {
        r[0]: r[1:]
        for r in sink.query(
            'SELECT conversation_id, "partition", first_offset, last_offset, event_count '
            "FROM agentlog_conversation_index"
        )
    }
    assert index == {
        k: (v["partition"], v["first_offset"], v["last_offset"], v["event_count"])
        for k, v in expected["index"].items()
    }

"""What the built-in projections must contain, computed from the raw records by plain
code that shares nothing with agentlog's reader or projections (fastavro + the .avsc
file), column by column: every projected column is computed here and compared."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMAS = Path(__file__).parent.parent.parent / "schemas"


def _parsed_by_fingerprint() -> dict[bytes, dict]:
    """Every released version of the schema, by its CRC-64-AVRO fingerprint (the 8 bytes
    after C3 01): writers use the newest, records written earlier keep theirs."""
    found = {}
    for avsc in SCHEMAS.glob("v*/agentlog.Event.avsc"):
        parsed = parse_schema(json.loads(avsc.read_text()))
        canonical = to_parsing_canonical_form(parsed)
        found[bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))] = parsed
    return found


_PARSED = _parsed_by_fingerprint()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CONVERSATIONS = "agentlog_conversations"
TOOL_CALLS = "agentlog_tool_calls"
INDEX = "agentlog_conversation_index"


def decode_plain(value: bytes) -> dict | None:
    """The event, or None for anything that is not a single-object record of a released
    schema version."""
    if not value or value[:2] != b"\xc3\x01" or value[2:10] not in _PARSED:
        return None
    try:
        schema = _PARSED[value[2:10]]
        return schemaless_reader(io.BytesIO(value[10:]), schema, return_record_name=True)
    except Exception:
        return None


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _new_conversation(cid: str) -> dict:
    return {
        "conversation_id": cid,
        "status": "active",
        "channel": None,
        "user_id": None,
        "intent": None,
        "current_agent": None,
        "agents": [],
        "turns": 0,
        "open_tool_calls": 0,
        "tool_calls": 0,
        "tool_errors": 0,
        "escalations": 0,
        "llm_calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
        "outcome": None,
        "first_activity": None,
        "last_activity": None,
        "events": 0,
    }


def _new_call(cid: str, call_id: str) -> dict:
    return {
        "conversation_id": cid,
        "tool_call_id": call_id,
        "tool_name": None,
        "agent": None,
        "arguments_json": None,
        "status": None,
        "attempts": 0,
        "failures": 0,
        "latency_ms": None,
        "total_duration_ms": 0.0,
        "result_json": None,
        "error_type": None,
        "error_message": None,
        "requested_at": None,
        "finished_at": None,
    }


def fold(records) -> dict:
    """records: objects with topic, partition, offset and value (kafka-python's
    ConsumerRecords of the events topic, or records of an offline log)."""
    seen: set[str] = set()
    conversations: dict[str, dict] = {}
    calls: dict[tuple[str, str], dict] = {}
    index: dict[str, dict] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        event = decode_plain(record.value)
        if event is None or event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        cid = event["conversation_id"]
        kind = event["payload"][0].split(".")[1]
        body = event["payload"][1]
        when = _micros(event["occurred_at"])

        c = conversations.setdefault(cid, _new_conversation(cid))
        c["events"] += 1
        c["first_activity"] = min(when, c["first_activity"] or when)
        c["last_activity"] = max(when, c["last_activity"] or when)
        named = [body.get("agent")]
        if kind == "Handoff":
            named = [body["from_agent"], body["to_agent"]]
        for agent in named:
            if agent and agent not in c["agents"]:
                c["agents"].append(agent)
        if kind == "ConversationStarted":
            c["channel"] = body["channel"]
            c["user_id"] = body["user_id"]
        elif kind == "ConversationEnded":
            c["status"] = "ended"
            c["outcome"] = body["outcome"]
        elif kind == "UserMessage":
            c["turns"] += 1
        elif kind == "AgentMessage":
            c["turns"] += 1
            c["current_agent"] = body["agent"]
        elif kind == "LlmCall":
            c["llm_calls"] += 1
            c["input_tokens"] += body["input_tokens"]
            c["output_tokens"] += body["output_tokens"]
            c["current_agent"] = body["agent"]
        elif kind == "ToolCallRequested":
            c["open_tool_calls"] += 1
            c["tool_calls"] += body["attempt"] == 1
        elif kind in ("ToolCallCompleted", "ToolCallFailed"):
            c["open_tool_calls"] = max(0, c["open_tool_calls"] - 1)
            c["tool_errors"] += kind == "ToolCallFailed"
        elif kind == "IntentIdentified":
            c["intent"] = body["intent"]
        elif kind == "Handoff":
            c["current_agent"] = body["to_agent"]
        elif kind == "Escalation":
            c["escalations"] += 1

        if kind.startswith("ToolCall"):
            key = (cid, body["tool_call_id"])
            call = calls.setdefault(key, _new_call(*key))
            call["tool_name"] = body["tool_name"]
            call["attempts"] = max(call["attempts"], body["attempt"])
            if kind == "ToolCallRequested":
                call["status"] = "requested"
                call["agent"] = body["agent"] or call["agent"]
                call["arguments_json"] = body["arguments_json"]
                if call["requested_at"] is None:
                    call["requested_at"] = when
            else:
                call["latency_ms"] = body["duration_ms"]
                call["total_duration_ms"] += body["duration_ms"]
                call["finished_at"] = when
            if kind == "ToolCallCompleted":
                call["status"] = "completed"
                call["result_json"] = body["result_json"]
            elif kind == "ToolCallFailed":
                call["status"] = "failed"
                call["failures"] += 1
                call["error_type"] = body["error_type"]
                call["error_message"] = body["error_message"]

        entry = index.setdefault(
            cid,
            {
                "conversation_id": cid,
                "topic": record.topic,
                "partition": record.partition,
                "first_offset": record.offset,
                "last_offset": record.offset,
                "event_count": 0,
                "first_time": when,
                "last_time": when,
            },
        )
        entry["event_count"] += 1
        entry["last_offset"] = max(entry["last_offset"], record.offset)
        entry["first_time"] = min(entry["first_time"], when)
        entry["last_time"] = max(entry["last_time"], when)
    return {CONVERSATIONS: conversations, TOOL_CALLS: calls, INDEX: index, "seen": seen}


def _keyed(table: str, rows) -> dict:
    if table == TOOL_CALLS:
        return {(r["conversation_id"], r["tool_call_id"]): r for r in rows}
    return {r["conversation_id"]: r for r in rows}


def assert_tables_match(tables: dict[str, list[dict]], expected: dict) -> None:
    """`tables`: every row of each built-in table, as dicts of column values."""
    for table in (CONVERSATIONS, TOOL_CALLS, INDEX):
        got = _keyed(table, tables[table])
        want = expected[table]
        assert set(got) == set(want), (table, set(got) ^ set(want))
        for key, row in want.items():
            found = got[key]
            assert set(found) == set(row), (table, "columns", set(found) ^ set(row))
            wrong = {c: (found[c], v) for c, v in row.items() if found[c] != v}
            assert not wrong, (table, key, "(projected, expected):", wrong)


def assert_sink_matches(sink, expected: dict) -> None:
    """Compare every row and column of the sink's built-in tables with the independent
    fold (the sink is read through `select` with the built-in table definitions)."""
    from agentlog.consumers import BUILT_IN

    definitions = {t.name: t for p in BUILT_IN.values() for t in p.tables}
    tables = {name: sink.select(definitions[name]) for name in (CONVERSATIONS, TOOL_CALLS, INDEX)}
    assert_tables_match(tables, expected)

"""A conversation with LLM calls recorded whole (schema v4) through the real recorder on
a real broker: an independent client decodes every record with the .avsc file alone,
`agentlog replay` shows the model's tool calls and the failed call, and `agentlog export
training` makes the model's parallel calls one assistant turn."""

from __future__ import annotations

import io
import json
from pathlib import Path

from fastavro import parse_schema, schemaless_reader
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.producers import Recorder
from agentlog.settings import Settings

CID = "conv-v4"
SCHEMA = Path(__file__).parent.parent.parent / "schemas" / "v4" / "agentlog.Event.avsc"
LLM = {"agent": "weather", "provider": "openai", "request_model": "gpt-4o"}
TOOL = {
    "type": "function",
    "name": "weather",
    "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _record(settings: Settings) -> None:
    asked = [{"role": "user", "parts": [{"type": "text", "content": "Paris and Rome?"}]}]
    with Recorder(settings, service="weather-bot") as recorder:
        recorder.user_message(CID, "Paris and Rome?")
        recorder.llm_call_failed(
            CID, **LLM, error_type="RateLimitError", error_message="Rate limit reached",
            latency_ms=20.0, status_code=429, input_messages=asked,
        )  # fmt: skip
        recorder.llm_call(
            CID,
            **LLM,
            latency_ms=400.0,
            input_tokens=50,
            output_tokens=12,
            input_messages=asked,
            tool_definitions=[TOOL],
            output_messages=[
                {
                    "role": "assistant",
                    "parts": [
                        {
                            "type": "tool_call",
                            "id": "c_p",
                            "name": "weather",
                            "arguments": {"city": "Paris"},
                        },
                        {
                            "type": "tool_call",
                            "id": "c_r",
                            "name": "weather",
                            "arguments": {"city": "Rome"},
                        },
                    ],
                    "finish_reason": "tool_call",
                }
            ],  # fmt: skip
            streamed=True,
            time_to_first_token_ms=90.0,
            event_id="3f2b6e1c-55aa-5c1e-8e3a-6d1f0a9b7c21",
        )
        for city, call_id in (("Paris", "c_p"), ("Rome", "c_r")):
            recorder.tool_call_requested(CID, call_id, "weather", {"city": city})
            recorder.tool_call_completed(CID, call_id, "weather", {"c": 18}, duration_ms=5.0)
        recorder.llm_call(
            CID, **LLM, latency_ms=300.0,
            output_messages=[{"role": "assistant", "finish_reason": "stop",
                              "parts": [{"type": "text", "content": "18C in both."}]}],
        )  # fmt: skip
        recorder.end_conversation(CID, "resolved")


def test_v4_calls_on_kafka_decode_replay_and_export(settings: Settings, tmp_path: Path) -> None:
    _record(settings)
    records = [
        r
        for r in read_all(settings.bootstrap_servers, settings.events_topic, expect=9)
        if r.key == CID.encode()
    ]
    assert len(records) == 9
    avsc = parse_schema(json.loads(SCHEMA.read_text()))
    plain = [schemaless_reader(io.BytesIO(r.value[10:]), avsc) for r in records]
    assert json.loads(plain[2]["payload"]["output_messages_json"])[0]["parts"][1]["id"] == "c_r"
    assert plain[2]["event_id"] == "3f2b6e1c-55aa-5c1e-8e3a-6d1f0a9b7c21"
    assert plain[2]["payload"]["time_to_first_token_ms"] == 90.0
    assert plain[1]["payload"]["status_code"] == 429

    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    shown = agentlog(*base, "replay", CID, state_dir=tmp_path)
    assert shown.code == 0, shown.err
    assert "failed after 20 ms: RateLimitError (HTTP 429): Rate limit reached" in shown.out
    assert 'model calls weather({"city":"Paris"}) [c_p], weather({"city":"Rome"}) [c_r]' in (
        shown.out
    )
    as_json = agentlog(*base, "replay", CID, "--format", "json", state_dir=tmp_path)
    assert as_json.code == 0, as_json.err
    calls = [e for e in json.loads(as_json.out)["events"] if e["event_type"] == "llm_call"]
    assert [c["name"] for c in calls[0]["llm_call"]["tool_calls"]] == ["weather", "weather"]

    out = tmp_path / "train.jsonl"
    exported = agentlog(
        *base, "export", "training", "--out", str(out), "--no-progress", state_dir=tmp_path
    )
    assert exported.code == 0, exported.err
    (example,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert [m["role"] for m in example["messages"]] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert [c["id"] for c in example["messages"][1]["tool_calls"]] == ["c_p", "c_r"]
    assert example["parallel_tool_calls"] is True
    assert example["tools"][0]["function"]["name"] == "weather"
    (provenance,) = [
        json.loads(x) for x in out.with_name("train.provenance.jsonl").read_text().splitlines()
    ]
    assert provenance["tool_calls_from"] == "model"

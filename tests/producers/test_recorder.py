"""The producer SDK against a real broker, checked with an independent client."""

from __future__ import annotations

import asyncio
import io
from collections import defaultdict

import pytest
from fastavro import parse_schema, schemaless_reader
from helpers.kafka_python_reader import read_all

from agentlog import codec, devbroker
from agentlog.errors import DeliveryFailed, UndeliveredEvent
from agentlog.events import PAYLOAD_TYPES, Event
from agentlog.partitioner import partition_for
from agentlog.producers import AsyncRecorder, Recorder
from agentlog.serde import decode_event
from agentlog.settings import Settings


def _record_every_type(recorder: Recorder, cid: str) -> None:
    recorder.start_conversation(cid, channel="web_chat", user_id="u-9", metadata={"plan": "team"})
    recorder.system_prompt(cid, "triage", "Route customers.", prompt_version="v1")
    recorder.tools_declared(
        cid,
        "billing",
        [{"name": "lookup_invoice", "description": "Fetch", "parameters": {"type": "object"}}],
    )
    recorder.user_message(cid, "I was charged twice", user_id="u-9")
    recorder.intent_identified(cid, "triage", "billing", 0.91)
    recorder.handoff(cid, "triage", "billing", reason="billing intent")
    recorder.llm_call(
        cid,
        agent="billing",
        provider="openai",
        request_model="gpt-4o",
        input=[{"role": "user", "content": "charged twice"}],
        output_text="Checking.",
        input_tokens=321,
        output_tokens=12,
        latency_ms=640.5,
        finish_reason="tool_calls",
    )
    recorder.llm_call(
        cid,
        agent="billing",
        provider="openai",
        request_model="gpt-4o",
        latency_ms=512.0,
        input_messages=[{"role": "user", "parts": [{"type": "text", "content": "twice?"}]}],
        output_messages=[
            {
                "role": "assistant",
                "parts": [
                    {
                        "type": "tool_call",
                        "id": "call_7",
                        "name": "lookup_invoice",
                        "arguments": {"id": "INV-7"},
                    }
                ],
                "finish_reason": "tool_call",
            }
        ],
        response_id="resp-7",
        cache_read_input_tokens=64,
        streamed=True,
        time_to_first_token_ms=80.5,
        event_id="5D1C5E0E-7A4B-5F3E-9C1D-0123456789AB",
    )
    recorder.llm_call_failed(
        cid,
        agent="billing",
        provider="openai",
        request_model="gpt-4o",
        error_type="RateLimitError",
        error_message="slow down",
        latency_ms=12.0,
        status_code=429,
    )
    asked = recorder.tool_call_requested(cid, "call_7", "lookup_invoice", {"id": "INV-7"})
    recorder.tool_call_failed(
        cid,
        "call_7",
        "lookup_invoice",
        error_type="TimeoutError",
        error_message="slow",
        duration_ms=5000.0,
        retryable=True,
        causation_id=asked,
    )
    recorder.tool_call_completed(
        cid, "call_7", "lookup_invoice", {"total": 12.5}, duration_ms=40.0, attempt=2
    )
    recorder.saga_started(cid, "saga-1", "refund", ["refund", "notify"], input={"inv": "I-1"})
    recorder.saga_step_started(cid, "saga-1", "refund", input={"amount": 12.5}, timeout_ms=5e3)
    recorder.saga_step_completed(cid, "saga-1", "refund", output={"ok": True})
    recorder.saga_step_failed(
        cid, "saga-1", "notify", error_type="TimeoutError", error_message="slow", timed_out=True
    )
    recorder.saga_step_compensated(cid, "saga-1", "refund", "provider refused")
    recorder.saga_ended(cid, "saga-1", "compensated", reason="notify timed out")
    recorder.agent_message(cid, "billing", "Done.")
    recorder.escalation(cid, "billing", "angry customer")
    recorder.end_conversation(cid, "escalated", reason="human took over")


def test_every_event_type_reaches_kafka_and_decodes_everywhere(settings: Settings) -> None:
    with Recorder(settings, service="support", version="2.0") as recorder:
        _record_every_type(recorder, "conv-all-types")

    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=len(PAYLOAD_TYPES))
    events = [decode_event(r.value) for r in records]
    assert {type(e.payload) for e in events} == set(PAYLOAD_TYPES)
    assert [e.event_type for e in events][:2] == ["conversation_started", "system_prompt"]
    # A standard Avro reader with the .avsc file alone reads the same values.
    parsed = parse_schema(codec.current().schema)
    for record, event in zip(records, events, strict=True):
        plain = schemaless_reader(io.BytesIO(record.value[10:]), parsed)
        assert plain["event_id"] == event.event_id
        assert record.key == b"conv-all-types"
        # The Kafka record timestamp is occurred_at.
        assert record.timestamp == int(event.occurred_at.timestamp() * 1000)
    completed = next(e for e in events if e.event_type == "tool_call_failed")
    requested = next(e for e in events if e.event_type == "tool_call_requested")
    assert completed.causation_id == requested.event_id
    assert all(e.source.service == "support" and e.source.version == "2.0" for e in events)
    # The v4 LLM call arrives whole, under the id its caller chose (canonical form).
    whole = next(e for e in events if e.event_id == "5d1c5e0e-7a4b-5f3e-9c1d-0123456789ab")
    assert whole.payload.response_id == "resp-7"
    assert whole.payload.finish_reasons == ["tool_call"]
    assert whole.payload.finish_reason == "tool_call"
    assert whole.payload.streamed and whole.payload.time_to_first_token_ms == 80.5
    failed = next(e for e in events if e.event_type == "llm_call_failed")
    assert (failed.payload.status_code, failed.payload.error_type) == (429, "RateLimitError")


def test_each_conversation_stays_in_one_partition_in_order(settings: Settings) -> None:
    conversations = [f"conv-{n}" for n in range(40)]
    with Recorder(settings) as recorder:
        for turn in range(25):
            for cid in conversations:
                recorder.user_message(cid, f"turn {turn}")

    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=1000)
    assert len(records) == 1000
    turns: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for record in records:
        event = decode_event(record.value)
        turns[event.conversation_id].append(int(event.payload.text.split()[1]))
        partitions[event.conversation_id].add(record.partition)
    for cid in conversations:
        assert turns[cid] == list(range(25))
        # murmur2 placement, as Java and Go producers would choose.
        assert partitions[cid] == {partition_for(cid, settings.partitions)}
    assert len({p for ps in partitions.values() for p in ps}) == settings.partitions


def test_tool_decorator_records_results_and_failures(settings: Settings) -> None:
    recorder = Recorder(settings, service="tools")

    @recorder.tool
    def lookup_invoice(invoice_id: str, include_lines: bool = False) -> dict:
        return {"invoice_id": invoice_id, "total": 99.0}

    @recorder.tool(name="issue_refund")
    def refund(invoice_id: str) -> None:
        raise PermissionError("refunds above 50 EUR need approval")

    with recorder.conversation("conv-tools"):
        assert lookup_invoice("INV-1") == {"invoice_id": "INV-1", "total": 99.0}
        with pytest.raises(PermissionError):
            refund("INV-1")
    recorder.close()

    recorded = [
        decode_event(r.value) for r in read_all(bootstrap_of(settings), settings.events_topic)
    ]
    # Each tool is declared before its first call in the conversation.
    declared = [e for e in recorded if e.event_type == "tools_declared"]
    assert [[t.name for t in e.payload.tools] for e in declared] == [
        ["lookup_invoice"],
        ["issue_refund"],
    ]
    assert [e.event_type for e in recorded][::3] == ["tools_declared"] * 2
    events = [e for e in recorded if e.event_type != "tools_declared"]
    kinds = [(e.event_type, e.payload.tool_name) for e in events]
    assert kinds == [
        ("tool_call_requested", "lookup_invoice"),
        ("tool_call_completed", "lookup_invoice"),
        ("tool_call_requested", "issue_refund"),
        ("tool_call_failed", "issue_refund"),
    ]
    assert events[0].payload.arguments_json == '{"invoice_id":"INV-1","include_lines":false}'
    assert events[1].payload.result_json == '{"invoice_id":"INV-1","total":99.0}'
    assert events[1].causation_id == events[0].event_id
    assert events[3].payload.error_type == "PermissionError"
    assert "approval" in events[3].payload.error_message
    assert events[0].payload.tool_call_id == events[1].payload.tool_call_id


def test_tool_decorator_needs_a_conversation(settings: Settings) -> None:
    with Recorder(settings) as recorder:

        @recorder.tool
        def search(query: str) -> list:
            return []

        with pytest.raises(Exception, match="recorder.conversation"):
            search("x")


def test_async_recorder(settings: Settings) -> None:
    async def agent() -> list[str]:
        async with AsyncRecorder(settings, service="async-agent") as recorder:
            return [
                await recorder.start_conversation("conv-async"),
                await recorder.user_message("conv-async", "hello"),
                await recorder.agent_message("conv-async", "bot", "hi!"),
                await recorder.end_conversation(
                    "conv-async", "resolved", event_id="00000000-0000-5000-8000-00000000000a"
                ),
            ]

    ids = asyncio.run(agent())
    events = [
        decode_event(r.value) for r in read_all(bootstrap_of(settings), settings.events_topic)
    ]
    assert [e.event_id for e in events] == ids
    assert ids[-1] == "00000000-0000-5000-8000-00000000000a"


def bootstrap_of(settings: Settings) -> str:
    assert settings.bootstrap_servers is not None
    return settings.bootstrap_servers


@pytest.fixture
def doomed_broker(tmp_path) -> Settings:
    """A broker of this test alone, to be stopped while events are in flight."""
    state = Settings(state_dir=tmp_path / "doomed")
    broker = devbroker.start(state)
    yield state.with_overrides(
        bootstrap_servers=broker.bootstrap, delivery_timeout_ms=3000, spool=False
    )
    devbroker.stop(state)


def test_events_a_stopped_broker_never_acknowledged_are_raised_not_dropped(
    doomed_broker: Settings,
) -> None:
    from agentlog.topics import create_topics

    create_topics(doomed_broker)
    recorder = Recorder(doomed_broker)
    recorder.user_message("conv-1", "before the outage")
    recorder.flush()
    devbroker.stop(doomed_broker)
    ids = [recorder.user_message("conv-1", f"during the outage {n}") for n in range(5)]
    with pytest.raises(DeliveryFailed) as caught:
        recorder.flush(timeout=20)
    undelivered = caught.value.undelivered
    assert len(undelivered) == 5
    # The failure carries the encoded events, so the caller can store or resend them.
    assert sorted(decode_event(u.value).event_id for u in undelivered) == sorted(ids)
    assert "not delivered" in str(caught.value)


def test_delivery_failures_go_to_the_callback_when_given(doomed_broker: Settings) -> None:
    failures: list[UndeliveredEvent] = []
    recorder = Recorder(doomed_broker, on_error=failures.append)
    devbroker.stop(doomed_broker)
    recorder.user_message("conv-2", "nobody hears this")
    recorder.flush(timeout=20)
    assert len(failures) == 1
    event: Event = decode_event(failures[0].value)
    assert event.payload.text == "nobody hears this"

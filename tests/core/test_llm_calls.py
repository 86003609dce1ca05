"""Schema v4: an LLM call recorded whole, a failed one as its own event, caller-chosen
event ids, and the one structured view every older `llm_call` folds into."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from helpers.offline_log import OfflineLog

from agentlog.errors import SchemaError
from agentlog.events import LlmCall, LlmCallFailed
from agentlog.llm_calls import ModelToolCall, structured_call
from agentlog.serde import decode_event

SAMPLES = Path(__file__).parent.parent / "samples"

ASKED = [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris and Rome?"}]}]
SYSTEM = [{"type": "text", "content": "You answer about weather."}]
TOOLS = [
    {
        "type": "function",
        "name": "weather",
        "description": "Current weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]
PARALLEL_ANSWER = [
    {
        "role": "assistant",
        "parts": [
            {"type": "reasoning", "content": "Two cities: two calls."},
            {"type": "text", "content": "Checking both."},
            {
                "type": "tool_call",
                "id": "call_p",
                "name": "weather",
                "arguments": {"city": "Paris"},
            },
            {"type": "tool_call", "id": "call_r", "name": "weather", "arguments": {"city": "Rome"}},
        ],
        "finish_reason": "tool_call",
    }
]


def _events(log: OfflineLog) -> list:
    return [decode_event(r.value) for r in log.records]


def test_an_llm_call_is_recorded_whole_and_reads_back_as_sent() -> None:
    log = OfflineLog()
    log.llm_call(
        "conv-w",
        agent="weather",
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2026-08-01",
        latency_ms=420.5,
        input_tokens=50,
        output_tokens=30,
        input_messages=ASKED,
        system_instructions=SYSTEM,
        tool_definitions=TOOLS,
        output_messages=PARALLEL_ANSWER,
        request_parameters={"temperature": 0.0, "tool_choice": "auto", "stream": True},
        response_id="chatcmpl-1",
        cache_read_input_tokens=32,
        cache_creation_input_tokens=0,
        reasoning_tokens=7,
        time_to_first_token_ms=95.25,
        streamed=True,
        provider_response={"id": "chatcmpl-1", "choices": [{"index": 0}]},
    )
    (event,) = _events(log)
    call = event.payload
    assert isinstance(call, LlmCall)
    # Derived from the output messages when not given.
    assert call.output_text == "Checking both."
    assert call.finish_reasons == ["tool_call"] and call.finish_reason == "tool_call"
    assert (call.cache_read_input_tokens, call.reasoning_tokens) == (32, 7)
    assert call.streamed and call.time_to_first_token_ms == 95.25
    assert call.response_id == "chatcmpl-1"
    assert orjson.loads(call.provider_response_json or "") == {
        "id": "chatcmpl-1",
        "choices": [{"index": 0}],
    }

    view = structured_call(call)
    assert view.model_tool_calls_known
    assert view.input_messages == ASKED
    assert view.system_instructions == SYSTEM
    assert view.tool_definitions == TOOLS
    assert view.output_messages == PARALLEL_ANSWER
    assert view.request_parameters == {"temperature": 0.0, "tool_choice": "auto", "stream": True}
    assert view.tool_calls == [
        ModelToolCall("call_p", "weather", {"city": "Paris"}),
        ModelToolCall("call_r", "weather", {"city": "Rome"}),
    ]


def test_a_failed_llm_call_is_an_event_of_its_own() -> None:
    log = OfflineLog()
    log.llm_call_failed(
        "conv-w",
        agent="weather",
        provider="openai",
        request_model="gpt-4o",
        error_type="RateLimitError",
        error_message="Rate limit reached",
        latency_ms=12.5,
        status_code=429,
        input_messages=ASKED,
        request_parameters={"temperature": 0.0},
    )
    (event,) = _events(log)
    assert event.event_type == "llm_call_failed"
    failed = event.payload
    assert isinstance(failed, LlmCallFailed)
    assert (failed.status_code, failed.error_type, failed.error_message) == (
        429,
        "RateLimitError",
        "Rate limit reached",
    )
    view = structured_call(failed)
    assert view.input_messages == ASKED and view.output_messages == []
    assert view.request_parameters == {"temperature": 0.0}


def test_the_legacy_form_still_records_and_folds_without_inventing_tool_calls() -> None:
    log = OfflineLog()
    log.llm_call(
        "conv-old",
        agent="a",
        provider="openai",
        request_model="gpt-4o",
        input=[{"role": "user", "content": "hi"}],
        output_text="hello",
        input_tokens=3,
        output_tokens=1,
        latency_ms=5.0,
        finish_reason="stop",
    )
    (event,) = _events(log)
    view = structured_call(event.payload)
    assert not view.model_tool_calls_known and view.tool_calls == []
    assert view.input_messages == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    assert view.output_messages == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "hello"}],
            "finish_reason": "stop",
        }
    ]
    assert view.finish_reasons == ["stop"]


def test_a_v3_llm_call_folds_into_the_v4_shape() -> None:
    """The stored v3 sample (written before v4 existed) reads as a structured call."""
    lines = (SAMPLES / "v3.hex").read_text().splitlines()
    events = [decode_event(bytes.fromhex(x)) for x in lines if x and not x.startswith("#")]
    (old,) = [e.payload for e in events if isinstance(e.payload, LlmCall)]
    assert old.input_messages_json is None and old.finish_reasons == []
    view = structured_call(old)
    assert view.input_messages == [
        {"role": "user", "parts": [{"type": "text", "content": "charged twice"}]}
    ]
    assert view.text == "Let me check."
    assert view.finish_reasons == ["tool_calls"]
    assert not view.model_tool_calls_known


def test_an_openai_chat_history_folds_into_typed_parts() -> None:
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18C"},
    ]
    call = LlmCall(
        agent="a",
        provider="openai",
        request_model="m",
        input_json=orjson.dumps(history).decode(),
        output_text="18C in Paris.",
        latency_ms=1.0,
    )
    assert structured_call(call).input_messages == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Paris?"}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "tool_call", "id": "c1", "name": "weather", "arguments": {"city": "Paris"}}
            ],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": "18C"}]},
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"input_messages_json": "{not json", "output_messages_json": "[1, [2], null]"},
        {"output_messages_json": '[{"role": 5, "parts": "x"}]', "tool_definitions_json": "7"},
        {"input_json": "[" * 5000 + "]" * 5000, "request_parameters_json": "[1]"},
        {"output_messages_json": '[{"parts": [{"type": "tool_call", "name": 3}]}]'},
    ],
)
def test_what_a_hostile_producer_wrote_reads_as_text_never_an_exception(fields: dict) -> None:
    call = LlmCall(agent="a", provider="p", request_model="m", latency_ms=0.0, **fields)
    view = structured_call(call)
    for message in view.input_messages + view.output_messages:
        assert isinstance(message["role"], str)
        assert all(isinstance(p, dict) and isinstance(p["type"], str) for p in message["parts"])
    assert isinstance(view.request_parameters, dict)
    assert all(isinstance(c.name, str) for c in view.tool_calls)


def test_a_caller_fixes_the_event_id_on_every_recording_method() -> None:
    log = OfflineLog()
    ids = [
        log.user_message("c", "hi", event_id="6BA7B810-9DAD-11D1-80B4-00C04FD430C8"),
        log.agent_message("c", "a", "hello", event_id="6ba7b811-9dad-11d1-80b4-00c04fd430c8"),
        log.record(
            "c",
            LlmCallFailed(
                agent="a",
                provider="p",
                request_model="m",
                error_type="APITimeoutError",
                error_message="timed out",
                latency_ms=1.0,
            ),
            event_id="6ba7b812-9dad-11d1-80b4-00c04fd430c8",
        ),
    ]
    assert ids == [
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        "6ba7b811-9dad-11d1-80b4-00c04fd430c8",
        "6ba7b812-9dad-11d1-80b4-00c04fd430c8",
    ]
    assert [e.event_id for e in _events(log)] == ids


@pytest.mark.parametrize("bad", ["not-a-uuid", "", 12345, "6ba7b810-9dad-11d1-80b4"])
def test_a_bad_event_id_is_a_schema_error_naming_it(bad: object) -> None:
    log = OfflineLog()
    with pytest.raises(SchemaError, match="event_id"):
        log.user_message("c", "hi", event_id=bad)
    assert log.records == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("input_messages", "hi"),
        ("output_messages", {"role": "assistant"}),
        ("request_parameters", [1]),
    ],
)
def test_structured_arguments_of_the_wrong_kind_are_refused(name: str, value: object) -> None:
    log = OfflineLog()
    with pytest.raises(SchemaError, match=name):
        log.llm_call(
            "c", agent="a", provider="p", request_model="m", latency_ms=1.0, **{name: value}
        )


def test_tail_shows_a_failed_call_with_its_error_and_status() -> None:
    from agentlog.render import one_line
    from agentlog.serde import decode

    log = OfflineLog()
    log.llm_call_failed(
        "c", agent="a", provider="p", request_model="gpt-4o", error_type="RateLimitError",
        error_message="slow down", latency_ms=3.0, status_code=429,
    )  # fmt: skip
    (record,) = log.records
    shown = one_line(decode(record.value), record.partition, record.offset)
    assert "llm_call_failed agent=a request_model=gpt-4o error_type=RateLimitError" in shown
    assert "status_code=429" in shown

"""Decoding rejects anything that is not an agentlog event, saying where it came from."""

from __future__ import annotations

import struct

import pytest
from helpers.sample_events import sample_events

from agentlog.errors import DecodeError, SchemaError
from agentlog.events import UserMessage
from agentlog.serde import EventEncoder, decode, encode_event, payload_to_avro
from agentlog.settings import Settings

ORIGIN = {"topic": "agentlog.events", "partition": 4, "offset": 1234}


def _reason(value: bytes | None) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(value, **ORIGIN)
    message = str(caught.value)
    assert "agentlog.events[4]@1234" in message
    return message


def test_garbage_is_rejected_with_its_origin() -> None:
    assert "not an Avro single-object record" in _reason(b"hello world")


def test_empty_value_is_rejected() -> None:
    assert "empty value" in _reason(b"")
    assert "empty value" in _reason(None)


def test_unknown_fingerprint_says_to_upgrade() -> None:
    value = encode_event(sample_events()[0])
    assert "unknown schema fingerprint" in _reason(value[:2] + b"\xff" * 8 + value[10:])


def test_truncated_body_is_rejected() -> None:
    value = encode_event(sample_events()[6])
    assert "corrupt Avro body" in _reason(value[: len(value) // 2])


def test_trailing_bytes_are_rejected() -> None:
    value = encode_event(sample_events()[0])
    assert "trailing bytes" in _reason(value + b"\x00\x01")


def test_out_of_range_union_index_is_rejected() -> None:
    event = sample_events()[0].model_copy(update={"payload": UserMessage(text="hi")})
    value = bytearray(encode_event(event))
    # The body of UserMessage(text="hi") is 4 bytes; the union index byte precedes it.
    assert value[-5] == 2 * 4  # zigzag of branch 4, UserMessage
    value[-5] = 0x7E  # branch 63: there is no such payload type
    assert "corrupt Avro body" in _reason(bytes(value))


def test_confluent_wire_format_is_recognised_and_said_to_be_unsupported() -> None:
    value = b"\x00" + struct.pack(">I", 42) + b"\x02ab"
    reason = _reason(value)
    assert "Confluent wire format (registry schema id 42)" in reason
    assert "does not support" in reason
    # No setting promises what is not built.
    assert "AGENTLOG_SCHEMA_REGISTRY_URL" not in reason
    assert "schema_registry_url" not in Settings.model_fields


@pytest.mark.parametrize(
    "value", [b"\x00", b"\x00\x00\x00\x00\x00", b"\x00" * 64, b"\x00\x00\x00\x00\x00\xff\x13"]
)
def test_zero_bytes_are_corrupt_not_a_registry_record(value: bytes) -> None:
    # Zeroed or truncated bytes start as the Confluent framing does, but no registry gives
    # out schema id 0 and a framed event has a body: not misdescribed as registry data.
    reason = _reason(value)
    assert "registry" not in reason and "Confluent" not in reason
    assert "not an agentlog event" in reason and value[:4].hex() in reason


def test_encoding_a_wrong_type_names_the_field() -> None:
    record = {
        "event_id": "e",
        "conversation_id": "c",
        "occurred_at": 1,
        "source": {"service": "s", "agent": None, "version": None},
        "trace_id": None,
        "span_id": None,
        "causation_id": None,
        "payload": ("agentlog.UserMessage", {"text": 42, "user_id": None}),
    }
    with pytest.raises(SchemaError, match="text"):
        EventEncoder().encode(record)


def test_payload_record_of_a_model_matches_its_avro_name() -> None:
    assert payload_to_avro(UserMessage(text="hi")) == (
        "agentlog.UserMessage",
        {"text": "hi", "user_id": None},
    )


def test_memoized_sources_never_leak_between_events() -> None:
    encoder = EventEncoder()
    sources = [{"service": "s", "agent": a, "version": None} for a in ("triage", "billing", None)]
    for n in range(30):
        source = sources[n % 3]
        payload = ("agentlog.UserMessage", {"text": f"m{n}", "user_id": None})
        value = encoder.encode_fields(f"e{n}", "c", n, source, None, None, None, payload)
        assert decode(value)["source"] == source
    fresh = {"service": "other", "agent": "x", "version": "2"}
    value = encoder.encode_fields("e", "c", 1, fresh, None, None, None, payload)
    assert decode(value)["source"] == fresh


def test_boolean_byte_other_than_0_or_1_is_a_corrupt_record_naming_the_field() -> None:
    failed = sample_events()[8]
    assert type(failed.payload).__name__ == "ToolCallFailed"
    value = bytearray(encode_event(failed))
    # `retryable` is the last field of the last field: the final byte.
    assert value[-1] == 1
    value[-1] = 2
    reason = _reason(bytes(value))
    assert "corrupt Avro body" in reason
    assert "ToolCallFailed.retryable" in reason


def _record_with(payload: tuple[str, dict[str, object]]) -> dict[str, object]:
    return {
        "event_id": "e",
        "conversation_id": "c",
        "occurred_at": 1,
        "source": {"service": "s", "agent": None, "version": None},
        "trace_id": None,
        "span_id": None,
        "causation_id": None,
        "payload": payload,
    }


def _llm_call(**changes: object) -> tuple[str, dict[str, object]]:
    name, body = payload_to_avro(sample_events()[6].payload)
    return name, {**body, **changes}


@pytest.mark.parametrize("field", ["input_tokens", "latency_ms"])
@pytest.mark.parametrize("flag", [True, False])
def test_a_boolean_for_a_number_names_the_field(field: str, flag: bool) -> None:
    with pytest.raises(SchemaError, match=field):
        EventEncoder().encode(_record_with(_llm_call(**{field: flag})))


def test_a_boolean_for_the_timestamp_names_the_field() -> None:
    fields = list(_record_with(_llm_call()).values())
    fields[2] = True
    with pytest.raises(SchemaError, match="occurred_at"):
        EventEncoder().encode_fields(*fields)

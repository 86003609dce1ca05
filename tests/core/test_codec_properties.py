"""The compiled Avro codec writes and reads exactly what fastavro does, on generated values.

fastavro is the reference: for any value of the schema the compiled encoder must write
fastavro's bytes, and the compiled decoder must read fastavro's bytes back to fastavro's
record. Values are generated from the Avro schema itself, so a new payload type is
covered without touching this file. Corrupted bytes may be rejected where fastavro is
lenient, but never read as something other than what fastavro reads.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
from collections.abc import Iterator
from datetime import UTC
from typing import Any
from unittest import mock

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from helpers.sample_events import sample_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentlog import codec, serde
from agentlog.codec import Codec, compile_codec
from agentlog.errors import DecodeError, SchemaError
from agentlog.events import NUMBER_LIMIT, PAYLOAD_BY_RECORD_NAME, Event, Source
from agentlog.serde import EventEncoder, decode, decode_event, encode_event, event_to_avro
from agentlog.settings import Settings

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

LONG = st.integers(-(2**63), 2**63 - 1)
# Every varint width (1 to 10 bytes) equally often; the encoder has a path per range.
LONG_OF_ANY_WIDTH = st.integers(0, 63).flatmap(lambda bits: st.integers(-(2**bits), 2**bits - 1))
INT = st.integers(-(2**31), 2**31 - 1)


# What serde compiles: the current schema with timestamps as plain longs.
EVENT_SCHEMA = serde._raw_schema(codec.current().version)

# Every type the compiler supports, including those the event schema does not use yet.
EVERYTHING_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "test.Everything",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "flag", "type": "boolean"},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": "string"},
        {"name": "nothing", "type": "null"},
        {"name": "maybe_int", "type": ["null", "int"]},
        {"name": "maybe_raw", "type": ["null", "bytes"]},
        {"name": "ints", "type": {"type": "array", "items": "int"}},
        {
            "name": "matrix",
            "type": {"type": "array", "items": {"type": "array", "items": "double"}},
        },
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "test.Inner",
                "fields": [
                    {"name": "s", "type": "string"},
                    {"name": "flags", "type": {"type": "array", "items": "boolean"}},
                ],
            },
        },
        {"name": "inners", "type": {"type": "array", "items": "test.Inner"}},
        {"name": "maybe_inner", "type": ["null", "test.Inner"]},
        {
            "name": "choice",
            "type": [
                "test.Inner",
                {
                    "type": "record",
                    "name": "test.Other",
                    "fields": [{"name": "n", "type": ["null", "long"]}],
                },
            ],
        },
    ],
}


def _named_records(schema: Any, found: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema, list):
        for branch in schema:
            _named_records(branch, found)
    elif isinstance(schema, dict):
        if schema["type"] == "record":
            found[schema["name"]] = schema
            for field in schema["fields"]:
                _named_records(field["type"], found)
        elif schema["type"] == "array":
            _named_records(schema["items"], found)
    return found


def values_of(schema: Any, named: dict[str, Any], small: bool = False) -> st.SearchStrategy[Any]:
    """Any value of `schema`, in the form fastavro writes and reads (unions of
    records as `(name, record)` tuples). `small` keeps strings, bytes and arrays short,
    so that a changed byte lands on structure more often than on text."""
    size = 3 if small else None
    if isinstance(schema, str) and schema in named:
        return values_of(named[schema], named, small)
    if isinstance(schema, list):
        if len(schema) == 2 and schema[0] == "null":
            return st.none() | values_of(schema[1], named, small)
        return st.one_of(*(_named_branch(branch, named, small) for branch in schema))
    if isinstance(schema, dict) and schema["type"] == "record":
        return st.fixed_dictionaries(
            {f["name"]: values_of(f["type"], named, small) for f in schema["fields"]}
        )
    if isinstance(schema, dict) and schema["type"] == "array":
        return st.lists(values_of(schema["items"], named, small), max_size=size or 5)
    if isinstance(schema, dict):
        return values_of(schema["type"], named, small)
    return {
        "string": st.text(max_size=size),  # every code point but lone surrogates (not UTF-8)
        "bytes": st.binary(max_size=size),
        "long": LONG,
        "int": INT,
        "double": st.floats(),  # NaN, infinities, -0.0 and subnormals included
        "float": st.floats(width=32),
        "boolean": st.booleans(),
        "null": st.none(),
    }[schema]


def _named_branch(
    branch: Any, named: dict[str, Any], small: bool = False
) -> st.SearchStrategy[Any]:
    record = named[branch] if isinstance(branch, str) else branch
    return st.tuples(st.just(record["name"]), values_of(record, named, small))


EVENT_NAMED = _named_records(EVENT_SCHEMA, {})
EVERYTHING_NAMED = _named_records(EVERYTHING_SCHEMA, {})
PAYLOAD_NAMES = sorted(PAYLOAD_BY_RECORD_NAME)


def event_records(payload_name: str) -> st.SearchStrategy[dict[str, Any]]:
    """Envelopes as the codec takes them, carrying one payload type."""
    payload = _named_branch(payload_name, EVENT_NAMED)
    fields = {
        f["name"]: payload if f["name"] == "payload" else values_of(f["type"], EVENT_NAMED)
        for f in EVENT_SCHEMA["fields"]
    }
    return st.fixed_dictionaries(fields)


def fastavro_bytes(parsed: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, parsed, record)
    return out.getvalue()


def fastavro_read(parsed: Any, data: bytes) -> tuple[Any, int]:
    stream = io.BytesIO(data)
    record = schemaless_reader(
        stream, parsed, return_record_name=True, return_record_name_override=True
    )
    return record, stream.tell()


def comparable(value: Any) -> Any:
    """NaN equals NaN here: a NaN read back is the same value for this purpose (its bit
    pattern is compared through the bytes)."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(comparable(v) for v in value)
    return value


class Pair:
    """The compiled codec and fastavro on one schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.codec: Codec = compile_codec(schema)
        self.parsed = parse_schema(schema)
        self.field_names = [field["name"] for field in schema["fields"]]

    def compiled_bytes(self, record: dict[str, Any]) -> bytes:
        return bytes(self.codec.encode(record, bytearray()))

    def assert_agree(self, record: dict[str, Any]) -> None:
        reference = fastavro_bytes(self.parsed, record)
        assert self.compiled_bytes(record) == reference
        fields = [record[name] for name in self.field_names]
        assert bytes(self.codec.encode_fields(bytearray(), *fields)) == reference
        decoded, end = self.codec.decode(reference, 0)
        expected, expected_end = fastavro_read(self.parsed, reference)
        assert comparable(decoded) == comparable(expected) == comparable(record)
        assert end == expected_end == len(reference)
        assert self.compiled_bytes(decoded) == reference


EVENTS = Pair(EVENT_SCHEMA)
EVERYTHING = Pair(EVERYTHING_SCHEMA)


@pytest.mark.parametrize("payload_name", PAYLOAD_NAMES)
@FAST
@given(data=st.data())
def test_every_payload_type_is_written_and_read_as_fastavro_does(
    payload_name: str, data: st.DataObject
) -> None:
    EVENTS.assert_agree(data.draw(event_records(payload_name)))


@FAST
@given(record=values_of(EVERYTHING_SCHEMA, EVERYTHING_NAMED))
def test_every_supported_type_is_written_and_read_as_fastavro_does(record: dict[str, Any]) -> None:
    EVERYTHING.assert_agree(record)


@FAST
@given(longs=st.lists(LONG_OF_ANY_WIDTH, min_size=1, max_size=20))
def test_longs_of_every_varint_width_agree(longs: list[int]) -> None:
    for value in longs:
        EVERYTHING.assert_agree(_everything_with(l=value, i=value >> 32))


def _everything_with(**fields: Any) -> dict[str, Any]:
    record = {
        "i": 0,
        "l": 0,
        "f": 0.0,
        "d": 0.0,
        "flag": False,
        "raw": b"",
        "text": "",
        "nothing": None,
        "maybe_int": None,
        "maybe_raw": None,
        "ints": [],
        "matrix": [],
        "inner": {"s": "", "flags": []},
        "inners": [],
        "maybe_inner": None,
        "choice": ("test.Other", {"n": None}),
    }
    record.update(fields)
    return record


# Bytes that mean something in Avro: 0/1 booleans, 0/2 union indexes (1 is branch -1),
# 0x7F/0x80 at the edge of a varint's continuation bit, 0xFF everything set.
MEANINGFUL_BYTES = (0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0xFF)


def corruptions(data: bytes) -> Iterator[bytes]:
    """Every byte changed to each meaningful value, every truncation, some extensions."""
    for pos, original in enumerate(data):
        for byte in MEANINGFUL_BYTES:
            if byte != original:
                yield data[:pos] + bytes([byte]) + data[pos + 1 :]
    for end in range(len(data)):
        yield data[:end]
    yield data + b"\x00"
    yield data + b"\x80"


def assert_never_misreads(pair: Pair, corrupt: bytes) -> None:
    try:
        decoded, end = pair.codec.decode(corrupt, 0)
    except (IndexError, ValueError, UnicodeDecodeError, struct.error):
        return  # rejecting corrupt bytes is always allowed, even where fastavro reads them
    try:
        expected, expected_end = fastavro_read(pair.parsed, corrupt)
    except Exception as exc:
        pytest.fail(f"compiled codec read {corrupt.hex()} that fastavro refuses ({exc!r})")
    assert comparable(decoded) == comparable(expected), corrupt.hex()
    assert end == expected_end, corrupt.hex()


@pytest.mark.parametrize(
    ("pair", "schema", "named"),
    [(EVENTS, EVENT_SCHEMA, EVENT_NAMED), (EVERYTHING, EVERYTHING_SCHEMA, EVERYTHING_NAMED)],
    ids=["event", "everything"],
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupt_bytes_are_rejected_or_read_as_fastavro_reads_them(
    pair: Pair, schema: dict[str, Any], named: dict[str, Any], data: st.DataObject
) -> None:
    record = data.draw(values_of(schema, named, small=True))
    valid = fastavro_bytes(pair.parsed, record)
    for corrupt in corruptions(valid):
        assert_never_misreads(pair, corrupt)


# AGENTLOG_CODEC: through the public serde functions, each codec gives fastavro's bytes
# and records, hence each gives the other's.

CODECS = ["compiled", "fastavro"]


@contextlib.contextmanager
def codec_chosen(name: str) -> Iterator[None]:
    """Run as a process started with AGENTLOG_CODEC=name would."""
    with mock.patch.dict(os.environ, {"AGENTLOG_CODEC": name}):
        _forget_codec_choice()
        try:
            yield
        finally:
            _forget_codec_choice()


def _forget_codec_choice() -> None:
    # serde picks its codec once per process (no look-up per record): make it pick again.
    serde._current_codec.cache_clear()
    serde._default_encoder.cache_clear()


@pytest.fixture(scope="module", params=CODECS)
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    with codec_chosen(request.param):
        yield request.param


def test_compiled_codec_is_the_default() -> None:
    with mock.patch.dict(os.environ):
        os.environ.pop("AGENTLOG_CODEC", None)
        assert Settings().codec == "compiled"
        _forget_codec_choice()
        assert serde._current_codec().name == "compiled"


def test_agentlog_codec_picks_the_codec(codec: str) -> None:
    assert serde._current_codec().name == codec


def test_an_unknown_codec_is_a_settings_error() -> None:
    with mock.patch.dict(os.environ, {"AGENTLOG_CODEC": "orjson"}):
        with pytest.raises(ValueError, match="codec"):
            Settings()


def model_events(payload_name: str) -> st.SearchStrategy[Event]:
    """Events built through the pydantic models, as an application builds them."""
    optional_text = values_of(["null", "string"], EVENT_NAMED)
    payload_type = PAYLOAD_BY_RECORD_NAME[payload_name]
    return st.builds(
        Event,
        event_id=st.text(),
        conversation_id=st.text(),
        occurred_at=st.datetimes(timezones=st.just(UTC)),
        source=values_of("agentlog.Source", EVENT_NAMED).map(lambda d: Source(**d)),
        trace_id=optional_text,
        span_id=optional_text,
        causation_id=optional_text,
        payload=values_of(payload_name, EVENT_NAMED)
        .map(_measures_a_model_takes)
        .map(payload_type.model_validate),
    )


def _measures_a_model_takes(fields: dict[str, Any]) -> dict[str, Any]:
    """The models refuse NaN, infinities and numbers beyond NUMBER_LIMIT (the codec alone
    still takes them, tested above): a model's floats are drawn finite and in range."""

    def measure(value: Any) -> Any:
        if not isinstance(value, float):
            return value
        if not math.isfinite(value):
            return 0.0
        return max(-NUMBER_LIMIT, min(NUMBER_LIMIT, value))

    return {name: measure(value) for name, value in fields.items()}


@pytest.mark.parametrize("payload_name", PAYLOAD_NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_serde_writes_and_reads_fastavro_bytes_with_either_codec(
    codec: str, payload_name: str, data: st.DataObject
) -> None:
    event = data.draw(model_events(payload_name))
    record = event_to_avro(event)
    reference = fastavro_bytes(EVENTS.parsed, record)
    value = encode_event(event)
    assert value[10:] == reference
    assert EventEncoder().encode_fields(*record.values()) == value
    assert comparable(decode(value)) == comparable(fastavro_read(EVENTS.parsed, reference)[0])
    assert comparable(decode(value)) == comparable(record)
    assert comparable(decode_event(value).model_dump()) == comparable(event.model_dump())


@pytest.mark.parametrize(
    ("payload", "field", "value"),
    [
        ("UserMessage", "text", 42),
        ("UserMessage", "text", None),
        ("UserMessage", "user_id", b"u"),
        ("LlmCall", "input_tokens", True),
        ("LlmCall", "input_tokens", 2**63),
        ("LlmCall", "latency_ms", False),
        ("ToolCallFailed", "retryable", 1),
    ],
)
def test_either_codec_refuses_a_wrong_value_naming_the_field(
    codec: str, payload: str, field: str, value: Any
) -> None:
    sample = next(e for e in sample_events() if type(e.payload).__name__ == payload)
    record = event_to_avro(sample)
    name, body = record["payload"]
    record["payload"] = (name, {**body, field: value})
    with pytest.raises(SchemaError, match=field):
        EventEncoder().encode(record)


def test_either_codec_rejects_a_truncated_record(codec: str) -> None:
    value = encode_event(sample_events()[6])
    with pytest.raises(DecodeError, match="corrupt Avro body"):
        decode(value[:-3])

"""The .avsc files, the pydantic models and the wire format agree, across versions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from helpers.sample_events import sample_events

from agentlog import codec
from agentlog.codec import event_schema
from agentlog.events import PAYLOAD_TYPES
from agentlog.serde import decode, decode_event, encode_event, event_to_avro

SAMPLES = Path(__file__).parent.parent / "samples"
SCHEMA_DIR = Path(__file__).parent.parent.parent / "schemas"


def _sample_records(version: int) -> list[bytes]:
    lines = (SAMPLES / f"v{version}.hex").read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def test_models_generate_exactly_the_newest_packaged_schema() -> None:
    """Changing an event model without releasing a new schema version fails here."""
    assert event_schema() == codec.current().schema


def test_every_released_version_has_stored_samples() -> None:
    for version in codec.versions():
        assert _sample_records(version.version), f"no samples for v{version.version}"


@pytest.mark.parametrize("version", [v.version for v in codec.versions()])
def test_current_reader_reads_every_released_version(version: int) -> None:
    records = _sample_records(version)
    decoded = [decode_event(r) for r in records]
    assert len({e.event_id for e in decoded}) == len(records)
    if version == codec.current().version:
        assert {type(e.payload) for e in decoded} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("version", [v.version for v in codec.versions()])
def test_earlier_schema_is_backward_compatible_by_avro_resolution(version: int) -> None:
    """fastavro resolves each stored record from its own version to the current one."""
    writer = parse_schema(json.loads((SCHEMA_DIR / f"v{version}" / codec.SCHEMA_FILE).read_text()))
    current = codec.current().schema
    reader = parse_schema(current)
    named = _records_by_name(current)
    for record in _sample_records(version):
        body = record[10:]
        as_written = schemaless_reader(io.BytesIO(body), writer, return_record_name=True)
        resolved = schemaless_reader(io.BytesIO(body), writer, reader, return_record_name=True)
        _assert_kept(current, named, as_written, resolved, "event")


def _records_by_name(schema: object, found: dict[str, dict] | None = None) -> dict[str, dict]:
    """Every record type declared in `schema`, by its full name (the .avsc files name
    them fully: `agentlog.UserMessage`)."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            _records_by_name(branch, found)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            found[schema["name"]] = schema
            for field in schema["fields"]:
                _records_by_name(field["type"], found)
        for inner in ("items", "values"):
            if inner in schema:
                _records_by_name(schema[inner], found)
    return found


def _assert_kept(schema, named, written, resolved, path: str) -> None:  # type: ignore[no-untyped-def]
    """Every value the old version wrote reads back unchanged under the current schema,
    and each field the old version did not have reads as the current schema's default:
    a field renamed or dropped (which Avro resolution accepts without a word) fails."""
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):  # a union: the branch the value took
        if isinstance(written, tuple):  # a record branch, named
            assert isinstance(resolved, tuple) and resolved[0] == written[0], path
            _assert_kept(written[0], named, written[1], resolved[1], f"{path}<{written[0]}>")
            return
        records = [b for b in schema if (b if isinstance(b, str) else b.get("name")) in named]
        if isinstance(written, dict) and len(records) == 1:
            _assert_kept(records[0], named, written, resolved, path)
            return
        assert resolved == written, path
        return
    kind = schema.get("type") if isinstance(schema, dict) else schema
    if kind == "record":
        fields = {field["name"]: field for field in schema["fields"]}
        assert isinstance(resolved, dict), path
        for name, value in written.items():
            assert name in fields, f"{path}.{name}: written, but no longer read"
            _assert_kept(fields[name]["type"], named, value, resolved[name], f"{path}.{name}")
        for name in fields.keys() - written.keys():
            assert resolved[name] == fields[name]["default"], f"{path}.{name}: not its default"
    elif kind == "array":
        assert len(resolved) == len(written), path
        for n, (old, new) in enumerate(zip(written, resolved, strict=True)):
            _assert_kept(schema["items"], named, old, new, f"{path}[{n}]")
    elif kind == "map":
        assert resolved.keys() == written.keys(), path
        for key in written:
            _assert_kept(schema["values"], named, written[key], resolved[key], f"{path}[{key}]")
    else:
        assert resolved == written, path


def test_a_standard_avro_reader_decodes_with_the_avsc_file_alone() -> None:
    current = f"v{codec.current().version}"
    avsc = json.loads((SCHEMA_DIR / current / codec.SCHEMA_FILE).read_text())
    parsed = parse_schema(avsc)
    for event in sample_events():
        value = encode_event(event)
        assert value[:2] == b"\xc3\x01"
        assert value[2:10] == codec.fingerprint_of(avsc)
        body = schemaless_reader(io.BytesIO(value[10:]), parsed, return_record_name=True)
        assert body["event_id"] == event.event_id
        assert body["payload"] == (
            f"agentlog.{type(event.payload).__name__}",
            event.payload.model_dump(),
        )
        assert body["occurred_at"] == event.occurred_at


def test_compiled_codec_writes_and_reads_the_same_bytes_as_fastavro() -> None:
    parsed = parse_schema(codec.current().schema)
    for event in sample_events():
        record = event_to_avro(event)
        reference = io.BytesIO()
        schemaless_writer(reference, parsed, record)
        value = encode_event(event)
        assert value[10:] == reference.getvalue(), type(event.payload).__name__
        assert decode(value) == record


def test_every_event_type_round_trips_through_the_models() -> None:
    for event in sample_events():
        assert decode_event(encode_event(event)) == event


def _spec_fingerprint64(data: bytes) -> int:
    """The Avro specification's reference CRC-64-AVRO, written out independently."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_single_object_header_carries_the_spec_fingerprint_little_endian() -> None:
    from fastavro.schema import to_parsing_canonical_form

    canonical = to_parsing_canonical_form(parse_schema(codec.current().schema))
    expected = _spec_fingerprint64(canonical.encode())
    value = encode_event(sample_events()[0])
    assert int.from_bytes(value[2:10], "little") == expected

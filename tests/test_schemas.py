"""The .avsc files, the pydantic models and the wire format agree, across versions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from sample_events import sample_events

from agentlog import schema_versions as schemas
from agentlog.avro_schema import event_schema
from agentlog.events import PAYLOAD_TYPES
from agentlog.serde import decode, decode_event, encode_event, event_to_avro

SAMPLES = Path(__file__).parent / "samples"
SCHEMA_DIR = Path(__file__).parent.parent / "schemas"


def _sample_records(version: int) -> list[bytes]:
    lines = (SAMPLES / f"v{version}.hex").read_text().splitlines()
    return [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]


def test_models_generate_exactly_the_newest_packaged_schema() -> None:
    """Changing an event model without releasing a new schema version fails here."""
    assert event_schema() == schemas.current().schema


def test_every_released_version_has_stored_samples() -> None:
    for version in schemas.versions():
        assert _sample_records(version.version), f"no samples for v{version.version}"


@pytest.mark.parametrize("version", [v.version for v in schemas.versions()])
def test_current_reader_reads_every_released_version(version: int) -> None:
    records = _sample_records(version)
    decoded = [decode_event(r) for r in records]
    assert len({e.event_id for e in decoded}) == len(records)
    if version == schemas.current().version:
        assert {type(e.payload) for e in decoded} == set(PAYLOAD_TYPES)


@pytest.mark.parametrize("version", [v.version for v in schemas.versions()])
def test_earlier_schema_is_backward_compatible_by_avro_resolution(version: int) -> None:
    """fastavro resolves each stored record from its own version to the current one."""
    writer = parse_schema(
        json.loads((SCHEMA_DIR / f"v{version}" / schemas.SCHEMA_FILE).read_text())
    )
    reader = parse_schema(schemas.current().schema)
    for record in _sample_records(version):
        schemaless_reader(io.BytesIO(record[10:]), writer, reader)


def test_a_standard_avro_reader_decodes_with_the_avsc_file_alone() -> None:
    current = f"v{schemas.current().version}"
    avsc = json.loads((SCHEMA_DIR / current / schemas.SCHEMA_FILE).read_text())
    parsed = parse_schema(avsc)
    for event in sample_events():
        value = encode_event(event)
        assert value[:2] == b"\xc3\x01"
        assert value[2:10] == schemas.fingerprint_of(avsc)
        body = schemaless_reader(io.BytesIO(value[10:]), parsed, return_record_name=True)
        assert body["event_id"] == event.event_id
        assert body["payload"] == (
            f"agentlog.{type(event.payload).__name__}",
            event.payload.model_dump(),
        )
        assert body["occurred_at"] == event.occurred_at


def test_compiled_codec_writes_and_reads_the_same_bytes_as_fastavro() -> None:
    parsed = parse_schema(schemas.current().schema)
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

    canonical = to_parsing_canonical_form(parse_schema(schemas.current().schema))
    expected = _spec_fingerprint64(canonical.encode())
    value = encode_event(sample_events()[0])
    assert int.from_bytes(value[2:10], "little") == expected

"""Bytes on the wire <-> events.

Registry-free records use Avro single-object encoding: `C3 01`, the 8-byte
CRC-64-AVRO fingerprint of the writer schema, then the Avro body. Readers find the
writer schema among the packaged versions by that fingerprint and resolve it to the
current reader schema. Records in the Confluent wire format (`00`, 4-byte schema id)
are recognised by their first byte.
"""

from __future__ import annotations

import copy
import io
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any, cast

from fastavro import parse_schema, schemaless_reader
from fastavro.validation import validate

from agentlog import claim_check, codec
from agentlog.codec import Codec, compile_codec, fastavro_codec
from agentlog.errors import BlobUnavailable, DecodeError, SchemaError
from agentlog.events import (
    AVRO_NAMESPACE,
    CLAIM_CHECK_RECORD_NAME,
    NUMBER_LIMIT,
    PAYLOAD_BY_RECORD_NAME,
    RECORDED,
    Event,
    Payload,
    Source,
)
from agentlog.settings import Settings

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0
_HEADER_LEN = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The event times a datetime holds (years 1 to 9999), in microseconds since the epoch.
_FIRST_MICROS = -62_135_596_800_000_000
_LAST_MICROS = 253_402_300_799_999_999

AvroDict = dict[str, Any]


def micros_of(moment: datetime) -> int:
    """Microseconds since the epoch, exact (no float rounding); naive means UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def datetime_of(micros: int) -> datetime:
    return datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)


def _without_logical_types(schema: Any) -> Any:
    """Timestamps stay integers on the hot path; logical types are not part of the
    parsing canonical form, so the fingerprint is unchanged."""
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


def _raw_schema(version: int) -> dict[str, Any]:
    schema = next(v.schema for v in codec.versions() if v.version == version)
    return cast(dict[str, Any], _without_logical_types(copy.deepcopy(schema)))


@cache
def _raw_parsed(version: int) -> Any:
    return parse_schema(_raw_schema(version))


@cache
def _current_header() -> bytes:
    return SINGLE_OBJECT_MAGIC + codec.current().fingerprint


@cache
def _current_codec() -> Codec:
    """The codec of the current schema, picked once per process from AGENTLOG_CODEC so
    that encoding and decoding look no setting up per record."""
    schema = _raw_schema(codec.current().version)
    # Events carry no NaN, infinity or absurd number (agentlog.events.NUMBER_LIMIT): the
    # recorder's hot path builds no model, so the encoder refuses them.
    if Settings().codec == "fastavro":
        return fastavro_codec(schema, number_limit=NUMBER_LIMIT)
    # The producer passes one unchanging `source` dict per agent: encode it once.
    return compile_codec(schema, memoize=frozenset({"source"}), number_limit=NUMBER_LIMIT)


class EventEncoder:
    """Encodes Avro dicts of the current schema as single-object records."""

    def __init__(self) -> None:
        current = codec.current()
        self._header = SINGLE_OBJECT_MAGIC + current.fingerprint
        self._codec = _current_codec()
        self._version = current.version
        self._field_names = [f["name"] for f in current.schema["fields"]]

    def encode(self, record: AvroDict) -> bytes:
        try:
            return bytes(self._codec.encode(record, bytearray(self._header)))
        except _ENCODE_ERRORS as exc:
            raise self._explain(record, exc) from None

    def encode_fields(self, *fields: Any) -> bytes:
        """Encode an envelope given its field values in schema order (the hot path)."""
        try:
            return bytes(self._codec.encode_fields(bytearray(self._header), *fields))
        except _ENCODE_ERRORS as exc:
            record = dict(zip(self._field_names, fields, strict=True))
            raise self._explain(record, exc) from None

    def _explain(self, record: AvroDict, error: Exception) -> SchemaError:
        # The compiled encoder often only knows something is wrong; fastavro says what.
        try:
            validate(record, _raw_parsed(self._version), raise_errors=True)
        except Exception as exc:
            return SchemaError(f"event does not fit agentlog.Event: {exc}")
        # What fastavro lets through (a float too large for 32 bits): the codec's reason.
        return SchemaError(f"event does not fit agentlog.Event: {error}")


_ENCODE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError, struct.error)


def decode(
    value: bytes | None,
    *,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    blobs: claim_check.BlobStore | None = None,
) -> AvroDict:
    """Decode one record's value into an Avro dict of the current reader schema.

    `occurred_at` stays integer microseconds and `payload` is a `(record name, dict)`
    tuple. A claim check is resolved: the event kept in the claim-check store `blobs`
    (default: the one the environment's settings name) is fetched, verified against its
    size and SHA-256 and returned in its place. Raises DecodeError naming topic,
    partition and offset (and the blob's reference) for anything else.
    """

    def fail(reason: str) -> DecodeError:
        return DecodeError(reason, topic=topic, partition=partition, offset=offset)

    record = _decode_value(value, fail)
    if record["payload"][0] == CLAIM_CHECK_RECORD_NAME:
        record = _claimed_event(record, fail, blobs or claim_check_store(Settings()))
    if not _FIRST_MICROS <= record["occurred_at"] <= _LAST_MICROS:
        # Any long fits the schema; an event time no calendar holds is no event's.
        raise fail(f"occurred_at {record['occurred_at']} is outside the years 1 to 9999")
    return record


def claim_check_store(settings: Settings) -> claim_check.BlobStore:
    """The claim-check store as `settings` name it, with their size limit."""
    return claim_check.BlobStore(settings.claim_check_store, settings.claim_check_max_bytes)


def _decode_value(value: bytes | None, fail: Callable[[str], DecodeError]) -> AvroDict:
    if not value:
        raise fail("empty value (a tombstone or a record that is not an agentlog event)")
    if value[:_HEADER_LEN] == _current_header():
        try:
            record, end = _current_codec().decode(value, _HEADER_LEN)
            if end != len(value):
                raise ValueError(f"{len(value) - end} trailing bytes")
        except Exception as exc:
            raise fail(f"corrupt Avro body ({type(exc).__name__}: {exc})") from None
        return record
    if value[:2] == SINGLE_OBJECT_MAGIC:
        if len(value) < _HEADER_LEN:
            raise fail("truncated single-object header")
        writer = codec.by_fingerprint(value[2:_HEADER_LEN])
        if writer is None:
            raise fail(
                f"unknown schema fingerprint {value[2:_HEADER_LEN].hex()}: written by a newer "
                "agentlog? upgrade agentlog to read it"
            )
        try:
            return schemaless_reader(  # type: ignore[return-value]  # a record: a dict
                io.BytesIO(value[_HEADER_LEN:]),
                _raw_parsed(writer.version),
                _raw_parsed(codec.current().version),
                return_record_name=True,
                return_record_name_override=True,
            )
        except Exception as exc:
            raise fail(f"corrupt Avro body ({type(exc).__name__}: {exc})") from None
    # The Confluent framing is 00, a schema id (registries count from 1), then a body:
    # zeroed or truncated bytes also start with 00 and are corrupt, not registry data.
    if value[0] == CONFLUENT_MAGIC and len(value) > 5 and struct.unpack(">I", value[1:5])[0]:
        schema_id = struct.unpack(">I", value[1:5])[0]
        raise fail(
            f"Confluent wire format (registry schema id {schema_id}): written through a "
            "schema registry, which agentlog does not support yet"
        )
    if value[0] == CONFLUENT_MAGIC:
        raise fail(
            f"corrupt record of {len(value)} bytes, not an agentlog event (first bytes "
            f"{value[:8].hex()}: no Avro header)"
        )
    raise fail(f"not an Avro single-object record (first bytes {value[:4].hex()})")


def _claimed_event(
    record: AvroDict, fail: Callable[[str], DecodeError], blobs: claim_check.BlobStore
) -> AvroDict:
    """The event a claim check stands for, fetched from the store and verified."""
    check = record["payload"][1]
    reference = claim_check.shown_reference(check["reference"])
    try:
        blob = blobs.fetch(check["reference"], check["size"], check["sha256"])
    except BlobUnavailable as exc:
        raise fail(str(exc)) from None
    event = _decode_value(blob, lambda reason: fail(f"claim-check blob {reference}: {reason}"))
    if event["payload"][0] == CLAIM_CHECK_RECORD_NAME or event["event_id"] != record["event_id"]:
        raise fail(
            f"claim-check blob {reference} holds event {event['event_id']} "
            f"({event['payload'][0]}), not {record['event_id']} ({check['payload_type']})"
        )
    return event


def claim_check_payload(blob: claim_check.BlobRef, payload_name: str) -> tuple[str, AvroDict]:
    """The payload that stands on Kafka for an event kept in the claim-check store."""
    fields = {
        "reference": blob.reference,
        "size": blob.size,
        "sha256": blob.sha256,
        "payload_type": payload_name,
    }
    return (CLAIM_CHECK_RECORD_NAME, fields)


def event_id_of(value: bytes) -> str | None:
    """The event id of an encoded event (its first field in every schema version),
    read without decoding the rest; None if `value` is not a single-object record."""
    if value[:2] != SINGLE_OBJECT_MAGIC or len(value) <= _HEADER_LEN:
        return None
    # An Avro string: a zigzag varint length, then UTF-8.
    pos, shift, n = _HEADER_LEN, 0, 0
    while pos < len(value) and shift < 64:
        byte = value[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            length = (n >> 1) ^ -(n & 1)
            if length < 0 or pos + length > len(value):
                return None
            try:
                return value[pos : pos + length].decode()
            except UnicodeDecodeError:
                return None
    return None


def payload_to_avro(payload: Payload) -> tuple[str, AvroDict]:
    """A payload model as the `(record name, fields)` union value the encoders take."""
    return (f"{AVRO_NAMESPACE}.{type(payload).__name__}", payload.model_dump())


def event_to_avro(event: Event) -> AvroDict:
    return {
        "event_id": event.event_id,
        "conversation_id": event.conversation_id,
        "occurred_at": micros_of(event.occurred_at),
        "source": event.source.model_dump(),
        "trace_id": event.trace_id,
        "span_id": event.span_id,
        "causation_id": event.causation_id,
        "payload": payload_to_avro(event.payload),
    }


def event_from_avro(record: AvroDict) -> Event:
    name, body = record["payload"]
    payload_type = PAYLOAD_BY_RECORD_NAME[name]
    # What is on the log is read as it is (a NaN an older producer wrote included).
    return Event.model_validate(
        {
            "event_id": record["event_id"],
            "conversation_id": record["conversation_id"],
            "occurred_at": datetime_of(record["occurred_at"]),
            "source": Source(**record["source"]),
            "trace_id": record["trace_id"],
            "span_id": record["span_id"],
            "causation_id": record["causation_id"],
            "payload": payload_type.model_validate(body, context=RECORDED),
        },
        context=RECORDED,
    )


def encode_event(event: Event) -> bytes:
    return _default_encoder().encode(event_to_avro(event))


def decode_event(value: bytes | None, **origin: Any) -> Event:
    return event_from_avro(decode(value, **origin))


@cache
def _default_encoder() -> EventEncoder:
    return EventEncoder()

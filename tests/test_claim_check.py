"""Events too large for a Kafka record: kept whole through the claim-check store, or
reported with the limit named; never a failure of the agent's own call."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from kafka_python_reader import read_all
from sample_events import sample_events

from agentlog.claim_check import BlobStore
from agentlog.errors import DecodeError, DeliveryFailed, UndeliveredEvent
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.serde import EventEncoder, claim_check_payload, decode, decode_event, encode_event
from agentlog.settings import Settings

FIVE_MB_ROWS = 72_000  # a little over 5 MB of JSON


def _big_result() -> dict:
    return {"rows": [{"id": n, "text": f"row {n} of the export " * 2} for n in range(FIVE_MB_ROWS)]}


def _claim_checked(store: BlobStore, event_index: int = 9) -> tuple[bytes, bytes, str]:
    """(the claim-check event as on Kafka, the full event in the store, blob path)."""
    event = sample_events()[event_index]
    full = encode_event(event)
    blob = store.put(full)
    record = {
        "event_id": event.event_id,
        "conversation_id": event.conversation_id,
        "occurred_at": 1,
        "source": {"service": "s", "agent": None, "version": None},
        "trace_id": None,
        "span_id": None,
        "causation_id": None,
        "payload": claim_check_payload(blob, "agentlog.ToolCallCompleted"),
    }
    return EventEncoder().encode(record), full, str(store.path_for(blob.sha256))


# -- the store and the reader, no broker ------------------------------------------------


def test_store_is_content_addressed_and_keeps_one_copy(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"x" * 5000
    first, second = store.put(data), store.put(data)
    assert first == second
    digest = hashlib.sha256(data).hexdigest()
    assert first.sha256 == digest and first.size == 5000
    assert first.reference == (tmp_path / "blobs" / "sha256" / digest[:2] / digest).as_uri()
    assert len(list((tmp_path / "blobs").rglob("*"))) == 3  # sha256/, ab/, the blob


def test_decode_resolves_a_claim_check_to_the_full_event(tmp_path: Path) -> None:
    on_kafka, full, _ = _claim_checked(BlobStore(tmp_path))
    assert decode(on_kafka) == decode(full)
    assert decode_event(on_kafka) == sample_events()[9]


def test_a_missing_blob_is_a_decode_error_naming_the_reference(tmp_path: Path) -> None:
    on_kafka, _, path = _claim_checked(BlobStore(tmp_path))
    Path(path).unlink()
    with pytest.raises(DecodeError) as caught:
        decode(on_kafka, topic="agentlog.events", partition=2, offset=7)
    message = str(caught.value)
    assert "agentlog.events[2]@7" in message
    assert f"claim-check blob {Path(path).as_uri()} is missing" in message


def test_an_altered_blob_is_refused(tmp_path: Path) -> None:
    on_kafka, full, path = _claim_checked(BlobStore(tmp_path))
    altered = bytearray(full)
    altered[-3] ^= 0x01
    Path(path).write_bytes(bytes(altered))
    with pytest.raises(DecodeError, match="does not match its SHA-256"):
        decode(on_kafka)
    Path(path).write_bytes(full[:-1])
    with pytest.raises(DecodeError, match=f"has {len(full) - 1} bytes, the event says"):
        decode(on_kafka)


def test_a_blob_of_another_event_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    on_kafka, _, _ = _claim_checked(store)
    other = encode_event(sample_events()[3])
    record = decode(on_kafka)
    # Same envelope, but the reference names a blob holding a different event.
    blob = store.put(other)
    swapped = dict(record, payload=claim_check_payload(blob, "agentlog.ToolCallCompleted"))
    with pytest.raises(DecodeError, match="holds event 00000000-0000-4000-8000-000000000003"):
        decode(EventEncoder().encode(swapped))


# -- through the recorder, on every engine ----------------------------------------------


@pytest.fixture(params=["direct", "spooled"])
def recording(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """The topic's settings, without and with the spool."""
    if request.param == "direct":
        return settings
    return settings.with_overrides(spool_dir=settings.state_dir / "spool")


def test_a_5mb_tool_result_is_returned_and_kept_whole(recording: Settings) -> None:
    settings = recording
    recorder = Recorder(settings, service="exporter")
    result = _big_result()

    @recorder.tool
    def export_rows(table: str) -> dict:
        return result

    with recorder.conversation("conv-big"):
        assert export_rows("invoices") is result
    recorder.close()

    expected_json = json.dumps(result, separators=(",", ":"))
    assert len(expected_json) > 5_000_000
    # kafka-python, a client independent of librdkafka: the raw record is small and names
    # the blob; agentlog's decode of those bytes gives back the whole result.
    raw = read_all(settings.bootstrap_servers, settings.events_topic, expect=2)
    assert [len(r.value) < settings.claim_check_threshold_bytes for r in raw] == [True, True]
    completed_raw = raw[1].value
    blobs = list((settings.claim_check_store / "sha256").rglob("*"))
    blob_files = [b for b in blobs if b.is_file()]
    assert len(blob_files) == 1
    assert blob_files[0].name.encode() in completed_raw  # the SHA-256, in the reference
    from_raw = decode_event(completed_raw)
    assert from_raw.event_type == "tool_call_completed"
    assert from_raw.payload.result_json == expected_json
    # confluent-kafka through agentlog's reader: the same.
    through_reader = [
        decode_event(m.value()) for m in read_partitions(settings, settings.events_topic)
    ]
    assert [e.event_type for e in through_reader] == ["tool_call_requested", "tool_call_completed"]
    assert through_reader[1] == from_raw
    assert through_reader[1].causation_id == through_reader[0].event_id


def test_without_claim_check_a_too_large_event_is_reported_not_raised(
    recording: Settings,
) -> None:
    settings = recording
    failures: list[UndeliveredEvent] = []
    plain = settings.with_overrides(claim_check=False)
    recorder = Recorder(plain, on_error=failures.append)
    result = _big_result()

    @recorder.tool
    def export_rows(table: str) -> dict:
        return result

    with recorder.conversation("conv-big"):
        assert export_rows("invoices") is result  # the agent keeps its result
    recorder.close()

    assert len(failures) == 1
    assert "message.max.bytes limit of 1000000 bytes" in failures[0].error
    assert "AGENTLOG_CLAIM_CHECK" in failures[0].error
    kept = decode_event(failures[0].value)  # the encoded event travels with the report
    assert kept.event_type == "tool_call_completed"
    assert kept.payload.result_json == json.dumps(result, separators=(",", ":"))
    on_topic = read_all(settings.bootstrap_servers, settings.events_topic, expect=1)
    assert [decode_event(r.value).event_type for r in on_topic] == ["tool_call_requested"]
    assert not settings.claim_check_store.exists()


def test_without_claim_check_or_on_error_flush_raises_delivery_failed(
    recording: Settings,
) -> None:
    settings = recording
    recorder = Recorder(settings.with_overrides(claim_check=False))
    event_id = recorder.agent_message("conv-big", "writer", "x" * 2_000_000)
    recorder.user_message("conv-big", "small enough")
    with pytest.raises(DeliveryFailed) as caught:
        recorder.close()
    (undelivered,) = caught.value.undelivered
    assert "exceeds the producer's message.max.bytes limit of 1000000 bytes" in str(caught.value)
    assert decode_event(undelivered.value).event_id == event_id
    assert len(read_all(settings.bootstrap_servers, settings.events_topic, expect=1)) == 1

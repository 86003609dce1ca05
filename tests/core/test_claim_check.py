"""Events too large for a Kafka record: kept whole through the claim-check store, or
reported with the limit named; never a failure of the agent's own call."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from helpers.kafka_python_reader import read_all
from helpers.sample_events import sample_events

from agentlog.claim_check import BlobRef, BlobStore
from agentlog.errors import ConfigurationError, DecodeError, DeliveryFailed, UndeliveredEvent
from agentlog.producers import Recorder
from agentlog.reader import read_partitions
from agentlog.serde import EventEncoder, claim_check_payload, decode, decode_event, encode_event
from agentlog.settings import Settings

FIVE_MB_ROWS = 72_000  # a little over 5 MB of JSON


def _big_result() -> dict:
    return {"rows": [{"id": n, "text": f"row {n} of the export " * 2} for n in range(FIVE_MB_ROWS)]}


def _claim_check_record(reference: str, size: int, sha256: str, event_index: int = 9) -> bytes:
    """A claim-check event as any producer could write it: every field chosen by it."""
    event = sample_events()[event_index]
    record = {
        "event_id": event.event_id,
        "conversation_id": event.conversation_id,
        "occurred_at": 1,
        "source": {"service": "s", "agent": None, "version": None},
        "trace_id": None,
        "span_id": None,
        "causation_id": None,
        "payload": claim_check_payload(
            BlobRef(reference, size, sha256), "agentlog.ToolCallCompleted"
        ),
    }
    return EventEncoder().encode(record)


def _claim_checked(store: BlobStore, event_index: int = 9) -> tuple[bytes, bytes, str]:
    """(the claim-check event as on Kafka, the full event in the store, blob path)."""
    full = encode_event(sample_events()[event_index])
    blob = store.put(full)
    on_kafka = _claim_check_record(blob.reference, blob.size, blob.sha256, event_index)
    return on_kafka, full, str(store.path_for(blob.sha256))


# -- the store and the reader, no broker ------------------------------------------------


def test_store_is_content_addressed_and_keeps_one_copy(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    data = b"x" * 5000
    first, second = store.put(data), store.put(data)
    assert first == second
    digest = hashlib.sha256(data).hexdigest()
    assert first.sha256 == digest and first.size == 5000
    assert first.reference == f"sha256:{digest}"  # a content address, never a path
    assert store.path_for(digest) == tmp_path / "blobs" / "sha256" / digest[:2] / digest
    assert len(list((tmp_path / "blobs").rglob("*"))) == 3  # sha256/, ab/, the blob


def test_decode_resolves_a_claim_check_to_the_full_event(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    on_kafka, full, _ = _claim_checked(store)
    assert decode(on_kafka, blobs=store) == decode(full)
    assert decode_event(on_kafka, blobs=store) == sample_events()[9]


def test_decode_finds_the_store_the_settings_name(tmp_path: Path, monkeypatch) -> None:
    on_kafka, _, _ = _claim_checked(BlobStore(tmp_path / "elsewhere"))
    monkeypatch.setenv("AGENTLOG_CLAIM_CHECK_DIR", str(tmp_path / "elsewhere"))
    assert decode_event(on_kafka) == sample_events()[9]


def test_a_file_reference_of_an_earlier_version_is_read_from_the_store(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    _, full, path = _claim_checked(store)
    digest = hashlib.sha256(full).hexdigest()
    legacy = _claim_check_record(Path(path).as_uri(), len(full), digest)
    assert decode_event(legacy, blobs=store) == sample_events()[9]


def test_a_missing_blob_is_a_decode_error_naming_the_reference(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    on_kafka, full, path = _claim_checked(store)
    Path(path).unlink()
    with pytest.raises(DecodeError) as caught:
        decode(on_kafka, topic="agentlog.events", partition=2, offset=7, blobs=store)
    message = str(caught.value)
    assert "agentlog.events[2]@7" in message
    digest = hashlib.sha256(full).hexdigest()
    assert f"claim-check blob sha256:{digest} is missing" in message


def test_an_altered_blob_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    on_kafka, full, path = _claim_checked(store)
    altered = bytearray(full)
    altered[-3] ^= 0x01
    Path(path).write_bytes(bytes(altered))
    with pytest.raises(DecodeError, match="does not match its SHA-256"):
        decode(on_kafka, blobs=store)
    Path(path).write_bytes(full[:-1])
    with pytest.raises(DecodeError, match=f"has {len(full) - 1} bytes, the event says"):
        decode(on_kafka, blobs=store)


def test_a_blob_of_another_event_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    on_kafka, _, _ = _claim_checked(store)
    other = encode_event(sample_events()[3])
    record = decode(on_kafka, blobs=store)
    # Same envelope, but the reference names a blob holding a different event.
    blob = store.put(other)
    swapped = dict(record, payload=claim_check_payload(blob, "agentlog.ToolCallCompleted"))
    with pytest.raises(DecodeError, match="holds event 00000000-0000-4000-8000-000000000003"):
        decode(EventEncoder().encode(swapped), blobs=store)


# -- hostile references: whoever can produce to the topic writes them --------------------


def _refused(on_kafka: bytes, store: BlobStore) -> str:
    with pytest.raises(DecodeError) as caught:
        decode(on_kafka, topic="agentlog.events", partition=0, offset=3, blobs=store)
    return str(caught.value)


def test_a_reference_to_dev_zero_is_refused_unread(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"").hexdigest()
    message = _refused(
        _claim_check_record("file:///dev/zero", 100_000, digest), BlobStore(tmp_path)
    )
    assert "claim-check reference file:///dev/zero is not a blob of the claim-check store" in (
        message
    )


def test_a_reference_to_a_file_outside_the_store_tells_nothing_of_it(tmp_path: Path) -> None:
    secret = tmp_path / "etc" / "shadow"
    secret.parent.mkdir()
    secret.write_bytes(b"root:$6$salt$hash:19000:0:99999:7:::\n" * 17)
    size = secret.stat().st_size
    store = BlobStore(tmp_path / "store")
    digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    for reference in (
        secret.as_uri(),
        f"file://{tmp_path}/store/sha256/{digest[:2]}/../../../etc/shadow",
        "sha256:../../etc/shadow",
        f"sha256:{digest}/../../../../etc/shadow",
    ):
        for claimed in (1, size):
            message = _refused(_claim_check_record(reference, claimed, digest), store)
            # Nothing about the file: not its size, not whether it exists.
            assert claimed == size or str(size) not in message
            assert "has " not in message and "missing" not in message
            assert "refused" in message or "not a blob" in message or "does not name" in message


def test_a_fifo_in_the_store_is_refused_without_waiting(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = hashlib.sha256(b"never written").hexdigest()
    store.path_for(digest).parent.mkdir(parents=True)
    os.mkfifo(store.path_for(digest))
    # Nobody opens the FIFO's other end: a blocking open would wait here forever.
    message = _refused(_claim_check_record(f"sha256:{digest}", 13, digest), store)
    assert f"claim-check blob sha256:{digest} is not a regular file: refused" in message


def test_a_device_in_the_store_is_refused_unread(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    digest = hashlib.sha256(b"").hexdigest()
    store.path_for(digest).parent.mkdir(parents=True)
    store.path_for(digest).symlink_to("/dev/zero")
    message = _refused(_claim_check_record(f"sha256:{digest}", 100_000, digest), store)
    assert "is a link or not a plain file in the store: refused" in message


def test_links_inside_the_store_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    full = encode_event(sample_events()[9])
    digest = hashlib.sha256(full).hexdigest()
    (outside / digest).write_bytes(full)  # even the right content is refused through a link
    store = BlobStore(tmp_path / "store")
    on_kafka = _claim_check_record(f"sha256:{digest}", len(full), digest)
    blob = store.path_for(digest)
    blob.parent.mkdir(parents=True)
    blob.symlink_to(outside / digest)
    assert "is a link or not a plain file in the store: refused" in _refused(on_kafka, store)
    blob.unlink()
    blob.parent.rmdir()
    blob.parent.symlink_to(outside)  # a linked directory on the way
    assert "is a link or not a plain file in the store: refused" in _refused(on_kafka, store)


def test_a_size_other_than_the_blobs_is_refused(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    _, full, _ = _claim_checked(store)
    digest = hashlib.sha256(full).hexdigest()
    for claimed in (len(full) - 1, len(full) + 1, 0):
        message = _refused(_claim_check_record(f"sha256:{digest}", claimed, digest), store)
        assert f"has {len(full)} bytes, the event says {claimed}" in message
    negative = _refused(_claim_check_record(f"sha256:{digest}", -1, digest), store)
    assert "is said to have -1 bytes, outside 0.." in negative


def test_a_blob_over_the_size_limit_is_refused_unread(tmp_path: Path, monkeypatch) -> None:
    store = BlobStore(tmp_path, max_bytes=4096)
    data = encode_event(sample_events()[9])
    digest = hashlib.sha256(data).hexdigest()
    huge = _claim_check_record(f"sha256:{digest}", 1 << 40, digest)
    assert "is said to have 1099511627776 bytes, outside 0..4096 (claim_check_max_bytes" in (
        _refused(huge, store)
    )
    monkeypatch.setenv("AGENTLOG_CLAIM_CHECK_DIR", str(tmp_path))
    monkeypatch.setenv("AGENTLOG_CLAIM_CHECK_MAX_BYTES", "2048")
    with pytest.raises(DecodeError, match="outside 0..2048"):
        decode(_claim_check_record(f"sha256:{digest}", 3000, digest))
    with pytest.raises(ConfigurationError, match="exceeds claim_check_max_bytes \\(4096\\)"):
        store.put(b"x" * 5000)  # the recorder is told, and keeps the event to report


@pytest.mark.parametrize(
    "reference, sha256",
    [
        ("sha256:" + "A" * 64, "A" * 64),  # upper case is not how the store names blobs
        ("sha256:" + "a" * 63, "a" * 63),
        ("sha256:" + "a" * 64 + "\n", "a" * 64 + "\n"),
        ("sha256:" + "g" * 64, "g" * 64),
        ("sha256:" + "a" * 64, "b" * 64),  # the reference names another blob than recorded
        ("", "a" * 64),
        ("http://example.com/blob", "a" * 64),
        ("/" + "a" * 64, "a" * 64),
        ("file://evil.example/" + "a" * 64, "a" * 64),
        ("file://[/" + "a" * 64, "a" * 64),  # urllib cannot split it (found by fuzzing)
    ],
)
def test_a_reference_that_is_no_content_address_is_refused(
    tmp_path: Path, reference: str, sha256: str
) -> None:
    message = _refused(_claim_check_record(reference, 10, sha256), BlobStore(tmp_path))
    assert "claim-check" in message and "agentlog.events[0]@3" in message
    assert "\n" not in message


def test_a_long_or_control_character_reference_is_shown_short_and_visible(tmp_path) -> None:
    reference = "sha256:\x1b]0;TITLE\x07" + "z" * 5000
    message = _refused(_claim_check_record(reference, 10, "a" * 64), BlobStore(tmp_path))
    assert "\x1b" not in message and "\x07" not in message
    assert len(message) < 400 and "(5017 characters)" in message


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
    # @recorder.tool declares the tool first (once per conversation), then the call.
    raw = read_all(settings.bootstrap_servers, settings.events_topic, expect=3)
    assert [len(r.value) < settings.claim_check_threshold_bytes for r in raw] == [True] * 3
    completed_raw = raw[2].value
    blobs = list((settings.claim_check_store / "sha256").rglob("*"))
    blob_files = [b for b in blobs if b.is_file()]
    assert len(blob_files) == 1
    assert blob_files[0].name.encode() in completed_raw  # the SHA-256, in the reference
    store = BlobStore(settings.claim_check_store)
    from_raw = decode_event(completed_raw, blobs=store)
    assert from_raw.event_type == "tool_call_completed"
    assert from_raw.payload.result_json == expected_json
    # confluent-kafka through agentlog's reader: the same.
    through_reader = [
        decode_event(m.value(), blobs=store)
        for m in read_partitions(settings, settings.events_topic)
    ]
    assert [e.event_type for e in through_reader] == [
        "tools_declared",
        "tool_call_requested",
        "tool_call_completed",
    ]
    assert through_reader[2] == from_raw
    assert through_reader[2].causation_id == through_reader[1].event_id  # completed <- requested


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
    on_topic = read_all(settings.bootstrap_servers, settings.events_topic, expect=2)
    assert [decode_event(r.value).event_type for r in on_topic] == [
        "tools_declared",
        "tool_call_requested",
    ]
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


# -- hostile references on the log: a dead letter, never a poison pill ------------------


def test_a_hostile_reference_is_a_dead_letter_and_readers_go_on(
    settings: Settings, tmp_path: Path
) -> None:
    from confluent_kafka import Producer
    from helpers.cli import agentlog
    from helpers.kafka_python_reader import read_all as read_topic

    digest = hashlib.sha256(b"anything").hexdigest()
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    with Recorder(settings) as recorder:
        recorder.user_message("conv-sample", "before")
        recorder.flush()
        # A claim check any producer could write: /dev/zero, 100000 bytes.
        raw.produce(
            settings.events_topic,
            _claim_check_record("file:///dev/zero", 100_000, digest),
            b"conv-sample",
        )
        assert raw.flush(30) == 0
        recorder.user_message("conv-sample", "after")
    base = ("--bootstrap", settings.bootstrap_servers, "--topic-prefix", settings.topic_prefix)
    projected = agentlog(*base, "project", "run", "--once", state_dir=tmp_path)
    assert projected.code == 0, projected.err
    assert projected.out.startswith("applied 2 events"), projected.out
    (letter,) = read_topic(settings.bootstrap_servers, settings.dlq_topic, expect=1)
    error = dict(letter.headers)["agentlog.error"].decode()
    assert "claim-check reference file:///dev/zero is not a blob of the claim-check store" in error
    again = agentlog(*base, "project", "run", "--once", state_dir=tmp_path)
    assert again.code == 0 and again.out.startswith("applied 0 events"), again.out
    tail = agentlog(*base, "tail", "--from-beginning", state_dir=tmp_path)
    assert tail.code == 0, tail.err
    assert "before" in tail.out and "after" in tail.out
    refused = [line for line in tail.err.splitlines() if "file:///dev/zero" in line]
    assert len(refused) == 1, tail.err
    # The archiver keeps the record as it is (its bytes and why it did not decode).
    archive = tmp_path / "archive"
    archived = agentlog(
        *base, "archive", "run", "--once", "--dir", str(archive), state_dir=tmp_path
    )
    assert archived.code == 0, archived.err
    assert archived.out.startswith("archived 3 records"), archived.out
    assert "1 undecodable kept as bytes" in archived.out


def test_the_trigger_runtime_dead_letters_a_hostile_reference_and_goes_on(
    settings: Settings,
) -> None:
    """The trigger runtime decodes with the same function: the reference is refused
    unread, one dead letter, and the handlers run for the events around it."""
    from confluent_kafka import Producer
    from helpers.kafka_python_reader import read_all as read_topic

    from agentlog.consumers.triggers import Agents, TriggerRuntime

    digest = hashlib.sha256(b"anything").hexdigest()
    raw = Producer(
        {"bootstrap.servers": settings.bootstrap_servers, "partitioner": "murmur2_random"}
    )
    with Recorder(settings) as recorder:
        recorder.user_message("conv-sample", "before")
        recorder.flush()
        raw.produce(
            settings.events_topic,
            _claim_check_record("file:///dev/zero", 100_000, digest),
            b"conv-sample",
        )
        assert raw.flush(30) == 0
        recorder.user_message("conv-sample", "after")
    seen: list[str] = []
    agents = Agents("hostile-references")

    @agents.on("user_message")
    def note(event, session) -> None:  # type: ignore[no-untyped-def]
        seen.append(event.payload["text"])

    TriggerRuntime(settings, agents, lambda trigger: None).run(once=True)
    assert seen == ["before", "after"]
    (letter,) = read_topic(settings.bootstrap_servers, settings.dlq_topic, expect=1)
    error = dict(letter.headers)["agentlog.error"].decode()
    assert "claim-check reference file:///dev/zero is not a blob of the claim-check store" in error

"""The durable local spool: crash-safe, bounded, in order; and a spooled recorder ships
what it kept when Kafka is there, now or at the next start."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from helpers.kafka_limits import incompressible, limit_record_size
from helpers.kafka_python_reader import read_all
from helpers.sample_events import sample_events

from agentlog import devbroker
from agentlog.errors import BrokerUnavailable, SpoolError, UndeliveredEvent
from agentlog.kafka_config import producer_config
from agentlog.producers import AsyncRecorder, Recorder, spool
from agentlog.producers.spool import MAGIC, ShippingIntent, Spool
from agentlog.reader import partition_ends
from agentlog.serde import decode_event, encode_event, micros_of
from agentlog.settings import Settings
from agentlog.topics import create_topics


def _open(directory: Path, max_bytes: int = 1 << 30) -> Spool:
    return Spool(directory, max_bytes=max_bytes, fsync_interval_ms=1000)


def _fill(target: Spool, count: int, start: int = 0) -> list[bytes]:
    values = [f"event {n} ".encode() * 10 for n in range(start, start + count)]
    for n, value in enumerate(values, start):
        assert target.append(f"conv-{n % 7}".encode(), value, 1_700_000_000_000 + n)
    return values


def _read_all(target: Spool) -> list[bytes]:
    return [r.value for r in target.read(target.committed, max_records=10**9, max_bytes=1 << 40)]


def test_records_come_back_in_order_across_segments(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 4096)
    s = _open(tmp_path)
    values = _fill(s, 500)
    assert len(list(tmp_path.glob("*.spool"))) > 10
    records = s.read(s.committed, max_records=10**9, max_bytes=1 << 40)
    assert [r.value for r in records] == values
    assert [r.key for r in records[:8]] == [f"conv-{n % 7}".encode() for n in range(8)]
    assert records[3].timestamp_ms == 1_700_000_000_003
    # Chunks read from where the last one ended see the same sequence.
    chunked, cursor = [], s.committed
    while chunk := s.read(cursor, max_records=37, max_bytes=1 << 40):
        chunked.extend(r.value for r in chunk)
        cursor = chunk[-1].end
    assert chunked == values
    # What Kafka has is forgotten: whole segments before the position are deleted.
    s.commit(records[300].position)
    assert _read_all(s) == values[300:]
    assert min(int(p.stem) for p in tmp_path.glob("*.spool")) == records[300].position.segment
    s.close()
    reopened = _open(tmp_path)
    assert _read_all(reopened) == values[300:]
    reopened.close()


def test_a_record_torn_by_a_crash_is_cut_off_not_misread(tmp_path: Path) -> None:
    s = _open(tmp_path)
    values = _fill(s, 20)
    s.close()
    (segment,) = tmp_path.glob("*.spool")
    intact = segment.stat().st_size
    whole = spool.frame(b"conv-x", b"the last event, half written", 1)
    with open(segment, "ab") as out:
        out.write(whole[: len(whole) // 2])
    reopened = _open(tmp_path)
    assert _read_all(reopened) == values
    assert segment.stat().st_size == intact
    # Appending goes on right after the last intact record.
    reopened.append(b"conv-x", b"after the crash", 2)
    assert _read_all(reopened) == [*values, b"after the crash"]
    reopened.close()


def test_a_tail_with_a_wrong_checksum_is_dropped(tmp_path: Path) -> None:
    s = _open(tmp_path)
    values = _fill(s, 5)
    s.close()
    (segment,) = tmp_path.glob("*.spool")
    data = bytearray(segment.read_bytes())
    data[-2] ^= 0xFF  # a flipped byte in the last record's value
    segment.write_bytes(bytes(data))
    reopened = _open(tmp_path)
    assert _read_all(reopened) == values[:4]
    reopened.close()


def test_unreadable_bytes_inside_an_older_segment_are_kept_aside(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(spool, "SEGMENT_BYTES", 2048)
    s = _open(tmp_path)
    values = _fill(s, 60)
    first = min(tmp_path.glob("*.spool"))
    data = bytearray(first.read_bytes())
    data[len(MAGIC) + 200] ^= 0xFF  # inside the second record
    first.write_bytes(bytes(data))
    read = _read_all(s)
    # The first record is before the damage; the first segment ends at it (nothing
    # misread), and the next segments are read whole.
    lost = len(values) - len(read)
    assert read == [values[0], *values[1 + lost :]] and lost >= 1
    (kept,) = tmp_path.glob("*.corrupt")
    assert kept.stat().st_size > 0
    s.close()


def test_one_recorder_per_spool(tmp_path: Path) -> None:
    s = _open(tmp_path)
    with pytest.raises(SpoolError, match=f"in use by another recorder \\(pid {os.getpid()}\\)"):
        _open(tmp_path)
    s.close()
    _open(tmp_path).close()


def test_a_full_spool_refuses_instead_of_growing(tmp_path: Path) -> None:
    s = _open(tmp_path, max_bytes=1 << 20)
    taken = 0
    while s.append(b"k", b"v" * 1000, 1):
        taken += 1
    assert 900 < taken < 1100
    assert sum(p.stat().st_size for p in tmp_path.glob("*.spool")) <= 1 << 20
    assert s.backlog_bytes() <= 1 << 20
    s.close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _unreachable(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(
        bootstrap_servers=f"127.0.0.1:{_free_port()}",
        topic_prefix="spooled.",
        partitions=3,
        state_dir=tmp_path / "state",
        spool_dir=tmp_path / "spool",
        **overrides,
    )


def test_a_full_spool_reports_events_and_never_blocks(tmp_path: Path) -> None:
    failures: list[UndeliveredEvent] = []
    settings = _unreachable(tmp_path, spool_max_bytes=1 << 20)
    recorder = Recorder(settings, on_error=failures.append)
    slowest = 0.0
    for n in range(12_000):
        started = time.perf_counter()
        recorder.user_message(f"conv-{n % 10}", "x" * 100)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < settings.max_block_ms / 1000
    assert failures, "a 1 MiB spool cannot hold 12,000 events of 200 bytes"
    assert "is full (1048576 bytes, spool_max_bytes)" in failures[0].error
    assert decode_event(failures[-1].value).payload.text == "x" * 100
    recorder.close(timeout=0.5)


def test_events_spooled_while_kafka_is_absent_ship_at_the_next_start(
    dev_broker_engine, tmp_path: Path, capfd
) -> None:
    """No broker at all while recording; the next recorder on the spool ships it all."""
    state = dev_broker_engine.settings(tmp_path / "broker")
    port = _free_port()
    settings = _unreachable(tmp_path).with_overrides(bootstrap_servers=f"127.0.0.1:{port}")
    recorder = Recorder(settings, service="offline")
    started = time.perf_counter()
    ids = [recorder.user_message(f"conv-{n % 5}", f"turn {n}") for n in range(1000)]
    assert time.perf_counter() - started < 5
    with pytest.raises(BrokerUnavailable, match="still wait in the spool"):
        recorder.flush(timeout=0.5)
    recorder.close(timeout=0.5)  # no error: the events are safe in the spool
    assert "still wait in the spool" in capfd.readouterr().err

    devbroker.start(state, port=port)
    try:
        create_topics(settings)
        with Recorder(settings, service="online") as again:
            ids.append(again.user_message("conv-0", "back online"))
        records = read_all(settings.bootstrap_servers, settings.events_topic, expect=1001)
        events = [decode_event(r.value) for r in records]
        assert sorted(e.event_id for e in events) == sorted(ids)
        for cid in {e.conversation_id for e in events}:
            texts = [e.payload.text for e in events if e.conversation_id == cid]
            turns = [int(t.split()[1]) for t in texts if t.startswith("turn")]
            assert turns == sorted(turns)
        assert [e.payload.text for e in events if e.conversation_id == "conv-0"][-1] == (
            "back online"
        )
        assert not list((tmp_path / "spool").glob("*.spool"))[1:]  # shipped, forgotten
    finally:
        devbroker.stop(state)


def test_spooled_recorder_delivers_in_order_when_kafka_is_up(settings: Settings) -> None:
    spooled = settings.with_overrides(spool_dir=settings.state_dir / "spool")
    with Recorder(spooled) as recorder:
        ids = [recorder.user_message(f"conv-{n % 20}", f"turn {n}") for n in range(5000)]
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=5000)
    assert len(records) == 5000
    by_id = {decode_event(r.value).event_id: r for r in records}
    assert set(by_id) == set(ids)
    positions = [(by_id[i].partition, by_id[i].offset) for i in ids]
    for cid in range(20):
        mine = positions[cid::20]
        assert mine == sorted(mine) and len({p for p, _ in mine}) == 1


def test_the_async_recorder_spools_too(settings: Settings) -> None:
    spooled = settings.with_overrides(spool_dir=settings.state_dir / "spool")

    async def agent() -> list[str]:
        async with AsyncRecorder(spooled, service="async-agent") as recorder:
            return [await recorder.user_message("conv-async", f"turn {n}") for n in range(50)]

    ids = asyncio.run(agent())
    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=50)
    assert [decode_event(r.value).event_id for r in records] == ids


@pytest.mark.parametrize("gapless", [False, True], ids=["plain", "refusal-is-fatal"])
def test_a_record_kafka_refuses_is_reported_and_shipping_goes_on(
    dev_broker_engine, tmp_path: Path, gapless: bool
) -> None:
    """With enable.gapless.guarantee the refusal is also a fatal producer error: the
    shipper reports the record, replaces the producer and goes on."""
    if not dev_broker_engine.capabilities.enforces_max_message_bytes:
        pytest.skip("Tansu does not enforce a topic's max.message.bytes")
    state = dev_broker_engine.settings(tmp_path / "broker")
    record = devbroker.start(state)
    try:
        settings = Settings(
            bootstrap_servers=record.bootstrap,
            topic_prefix="refused.",
            partitions=3,
            state_dir=tmp_path / "state",
            spool_dir=tmp_path / "spool",
        )
        create_topics(settings)
        limit_record_size(settings, 20_000)
        failures: list[UndeliveredEvent] = []
        extra = {"enable.gapless.guarantee": True} if gapless else {}
        with Recorder(settings, on_error=failures.append, producer_config=extra) as recorder:
            before = recorder.user_message("conv-1", "before")
            recorder.flush(timeout=30)
            # Alone in its batch: Kafka refuses a whole batch for one record too large.
            big = recorder.agent_message("conv-1", "writer", incompressible(50_000))
            recorder.flush(timeout=30)
            after = recorder.user_message("conv-1", "after")
        assert [decode_event(f.value).event_id for f in failures] == [big]
        assert "as too large for the topic" in failures[0].error
        records = read_all(record.bootstrap, settings.events_topic, expect=2)
        assert [decode_event(r.value).event_id for r in records] == [before, after]
    finally:
        devbroker.stop(state, wipe=True)


def test_a_chunk_a_dead_recorder_left_unconfirmed_is_not_sent_twice(settings: Settings) -> None:
    """A recorder died while shipping: 40 of the 60 events of its announced chunk had
    reached Kafka. The next recorder on the spool looks them up and sends only the rest."""
    spool_dir = settings.state_dir / "spool"
    events = [
        event.model_copy(update={"event_id": f"00000000-0000-4000-8000-{n:012d}"})
        for n, event in enumerate(sample_events() * 7)
    ][:100]
    left = _open(spool_dir)
    for event in events:
        key = event.conversation_id.encode()
        assert left.append(key, encode_event(event), micros_of(event.occurred_at) // 1000)
    chunk = left.read(left.committed, max_records=60, max_bytes=1 << 30)
    left.announce(ShippingIntent(chunk[-1].end, partition_ends(settings, settings.events_topic)))
    left.close()
    producer = Producer(producer_config(settings))
    for record in chunk[:40]:
        producer.produce(settings.events_topic, record.value, record.key)
    assert producer.flush(30) == 0

    with Recorder(settings.with_overrides(spool_dir=spool_dir)):
        pass  # shipping what the spool holds is all it does

    records = read_all(settings.bootstrap_servers, settings.events_topic, expect=100)
    ids = [decode_event(r.value).event_id for r in records]
    assert len(ids) == 100
    assert set(ids) == {e.event_id for e in events}

"""The one partition reader (`agentlog.reader.PartitionReader`): its bounds and seeks give
the same answers on Tansu and on Apache Kafka, whatever each engine does with a fetch
past the end, and every wait ends, naming what it waited for."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import producer_config
from agentlog.reader import (
    Bounds,
    PartitionReader,
    out_of_order,
    partition_ends,
    partition_offset,
)
from agentlog.settings import Settings

RECORDS = 50
FIRST_MS = 1_790_000_000_000  # a record's Kafka timestamp: FIRST_MS + 1000 * offset


@pytest.fixture
def written(settings: Settings) -> Settings:
    """Partition 0 holds RECORDS records, one second apart; partitions 1 and 2 none."""
    producer = Producer(producer_config(settings))
    for n in range(RECORDS):
        producer.produce(
            settings.events_topic,
            f"record {n}".encode(),
            partition=0,
            timestamp=FIRST_MS + n * 1000,
        )
    assert producer.flush(30) == 0
    return settings


def _offsets(messages: object) -> list[int]:
    return [partition_offset(m)[1] for m in messages]  # type: ignore[attr-defined]


def test_bounds_come_from_the_fetch(written: Settings) -> None:
    with PartitionReader(written, written.events_topic) as reader:
        assert reader.partition_count() == 3
        assert reader.bounds(0) == Bounds(0, RECORDS)
        assert reader.bounds(1) == Bounds(0, 0)
        assert reader.end(0) == RECORDS
    assert partition_ends(written, written.events_topic) == {0: RECORDS, 1: 0, 2: 0}
    # A start past the end is answered with the end (Kafka refuses the fetch, Tansu holds
    # it): neither waits.
    past = partition_ends(written, written.events_topic, {0: RECORDS + 20, 1: 5})
    assert past == {0: RECORDS, 1: 0, 2: 0}


def test_seek_by_offset_reads_exactly_the_range(written: Settings) -> None:
    with PartitionReader(written, written.events_topic) as reader:
        assert _offsets(reader.read(0, 10, 20)) == list(range(10, 20))
        assert _offsets(reader.read(0, RECORDS - 5)) == list(range(RECORDS - 5, RECORDS))
        # Past the end: nothing, at once, on both engines.
        assert _offsets(reader.read(0, RECORDS + 10)) == []
        assert _offsets(reader.read(1, 0)) == []
        assert reader.records_read == 15


def test_seek_by_index_reads_the_ranges_in_turn(written: Settings) -> None:
    with PartitionReader(written, written.events_topic) as reader:
        ranges = [(0, 2), (20, 23), (RECORDS - 1, None)]
        assert _offsets(reader.read_ranges(0, ranges)) == [0, 1, 20, 21, 22, RECORDS - 1]


def test_record_at_an_offset_or_the_end(written: Settings) -> None:
    with PartitionReader(written, written.events_topic) as reader:
        found = reader.records_at({0: 17, 1: 0})
    record = found[0].record
    assert record is not None and partition_offset(record) == (0, 17)
    assert record.value() == b"record 17"
    assert found[1].record is None and found[1].end == 0


def test_seek_by_time_reads_the_records_timestamps(written: Settings) -> None:
    with PartitionReader(written, written.events_topic) as reader:
        assert reader.first_at_or_after([0, 1], FIRST_MS + 30_000) == {0: 30, 1: 0}
        assert reader.first_at_or_after([0], FIRST_MS + 29_500) == {0: 30}
        assert reader.first_at_or_after([0], FIRST_MS - 1) == {0: 0}
        # After the last record: the end, where a group starting then reads first.
        assert reader.first_at_or_after([0], FIRST_MS + RECORDS * 1000) == {0: RECORDS}


def test_a_wait_without_a_broker_ends_and_says_what_it_waited_for(tmp_path) -> None:
    nobody = Settings(
        bootstrap_servers="127.0.0.1:9", state_dir=tmp_path / "state", broker_lost_s=60
    )
    with PartitionReader(nobody, "agentlog.events", idle_timeout=1.0) as reader:
        with pytest.raises(BrokerUnavailable, match=r"agentlog\.events\[0\] offsets 3\.\.7"):
            list(reader.read(0, 3, 7))


def test_out_of_order_reads_a_gap_again_and_tells_a_record_below(written: Settings) -> None:
    """The one test every reader that takes each offset in turn makes: the record it was
    handed is the one expected, past it (the gap's records read again), or below it."""
    topic = written.events_topic
    assert out_of_order(written, topic, 0, 5, 5) is None
    assert out_of_order(written, topic, 0, 5, None) is None  # nothing expected yet
    gap = out_of_order(written, topic, 0, 7, 3)  # handed offset 7 when 3 was expected
    assert gap is not None and not gap.below and not gap.lost
    assert gap.gap == range(3, 7)
    assert _offsets(gap.missing) == [3, 4, 5, 6]
    assert [m.value() for m in gap.missing] == [f"record {n}".encode() for n in range(3, 7)]
    again = out_of_order(written, topic, 0, 2, 5)  # handed again, or the log starts again
    assert again is not None and again.below and not again.gap and again.missing == []
    # Past the end of the log: a gap it does not hold (what retention leaves) is lost.
    beyond = out_of_order(written, topic, 1, 3, 0)
    assert beyond is not None and beyond.lost and beyond.gap == range(0, 3)

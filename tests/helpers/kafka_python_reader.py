"""Reads a topic with kafka-python: a Kafka client independent of librdkafka."""

from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

# With no count to expect, the topic is read until nothing more arrives for this long.
QUIET_MS = 2000


def read_all(
    bootstrap: str, topic: str, expect: int | None = None, timeout: float = 60
) -> list[ConsumerRecord]:
    """Every record of the topic, ordered by (partition, offset). With `expect`, returns
    as soon as that many have arrived (if they never do, after `timeout` seconds with what
    there is: partitions may arrive seconds apart on a loaded machine); without, once the
    topic has been quiet for QUIET_MS."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            if expect is not None and len(records) >= expect:
                break
            batch = consumer.poll(timeout_ms=200)
            arrived = [r for rs in batch.values() for r in rs]
            if arrived:
                records.extend(arrived)
                quiet_since = time.monotonic()
            elif expect is None and (time.monotonic() - quiet_since) * 1000 >= QUIET_MS:
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()

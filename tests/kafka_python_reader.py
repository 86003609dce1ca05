"""Reads a topic with kafka-python: a Kafka client independent of librdkafka."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord


def read_all(bootstrap: str, topic: str, expect: int | None = None) -> list[ConsumerRecord]:
    """Every record of the topic, ordered by (partition, offset)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        assignment = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        records: list[ConsumerRecord] = []
        while True:
            batch = list(consumer)
            records.extend(batch)
            if not batch or expect is None or len(records) >= expect:
                break
        return sorted(records, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()

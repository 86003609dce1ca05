"""murmur2 partitioning matches Kafka's Java client (as kafka-python implements it)."""

from __future__ import annotations

from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from agentlog.partitioner import murmur2, partition_for


def test_murmur2_matches_the_java_client_on_many_keys() -> None:
    keys = [b"", b"a", b"ab", b"abc", b"abcd", "konversation-ü".encode()]
    keys += [f"conv-{n}".encode() for n in range(2000)]
    for key in keys:
        assert murmur2(key) == kafka_python_murmur2(key) & 0xFFFFFFFF, key


def test_partition_for_uses_the_positive_hash() -> None:
    for n in range(500):
        key = f"c{n}"
        expected = (kafka_python_murmur2(key.encode()) & 0x7FFFFFFF) % 7
        assert partition_for(key, 7) == expected

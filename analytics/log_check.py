"""Is the log in Kafka the one the archive was written from?

A recreated topic, or a dev broker restarted with an empty memory, starts its offsets
again at 0; archiving it on top of the old files would mix two logs. So before it reads,
the archiver looks at the record at the last offset it archived of each partition: the
log must still hold that offset (or have deleted it by retention), with the same event.

Works on both engines: Kafka answers a fetch past the end (or before the start) with
out-of-range, and the first offset left then tells which; Tansu waits, but reports the
partition's end in the fetch's high watermark.
"""

from __future__ import annotations

import time

import pyarrow.parquet as pq
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from agentlog.analytics.archive_files import ArchiveFile, last_archived
from agentlog.errors import ArchiveError, BrokerUnavailable, DecodeError
from agentlog.reader import reading_consumer
from agentlog.serde import decode
from agentlog.settings import Settings


def _archived_event_id(f: ArchiveFile) -> str | None:
    table = pq.read_table(f.path, columns=["offset", "event_id"])
    offsets = table.column("offset").to_pylist()
    return table.column("event_id")[offsets.index(f.last)].as_py()  # type: ignore[no-any-return]


def _different(topic: str, root: object, partition: int, why: str) -> ArchiveError:
    return ArchiveError(
        f"the archive in {root} was written from another log of {topic}: partition "
        f"{partition} {why} (a recreated topic, or a restarted dev broker?); archive this log "
        "into a new --dir"
    )


def check_same_log(
    settings: Settings,
    topic: str,
    root: object,
    files: list[ArchiveFile],
    partitions: int,
    timeout: float = 30.0,
) -> list[str]:
    """Raise ArchiveError if the log is not the one archived; returns notes (a last
    archived record that retention has deleted since cannot be compared)."""
    latest = last_archived(files)
    beyond = sorted(p for p in latest if p >= partitions)
    if beyond:
        raise _different(
            topic, root, beyond[0], f"is archived but the topic has {partitions} partitions now"
        )
    if not latest:
        return []
    notes: list[str] = []
    last = {p: f.last for p, f in latest.items()}
    # Out of range is an answer here, not a reason to start again at the beginning.
    consumer = reading_consumer(settings, **{"auto.offset.reset": "error"})
    try:
        consumer.incremental_assign([TopicPartition(topic, p, o) for p, o in last.items()])
        pending = set(last)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise BrokerUnavailable(
                    f"Kafka at {settings.bootstrap_servers} did not answer for partitions "
                    f"{sorted(pending)} of {topic} within {timeout:.0f}s"
                )
            for message in consumer.consume(100, 0.2):
                partition, offset = message.partition(), message.offset()
                if partition not in pending or offset is None:
                    continue
                error = message.error()
                if error is not None and error.code() == KafkaError._AUTO_OFFSET_RESET:
                    # Past the end, or deleted by retention: the first offset left tells.
                    consumer.incremental_unassign([TopicPartition(topic, partition)])
                    consumer.incremental_assign(
                        [TopicPartition(topic, partition, OFFSET_BEGINNING)]
                    )
                    continue
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF and offset <= last[partition]:
                        raise _different(
                            topic,
                            root,
                            partition,
                            f"ends at offset {offset}, before offset {last[partition]} "
                            "that the archive holds",
                        )
                    continue
                if offset < last[partition]:
                    raise _different(
                        topic,
                        root,
                        partition,
                        f"has no offset {last[partition]} (the archive holds it)",
                    )
                if offset > last[partition]:
                    notes.append(
                        f"{topic}[{partition}] no longer holds offset {last[partition]} "
                        "(retention): could not check it is the log archived"
                    )
                else:
                    _compare(topic, root, partition, latest[partition], message.value())
                pending.discard(partition)
                consumer.pause([TopicPartition(topic, partition)])
            for partition in list(pending):
                # Tansu waits on a fetch past the end instead of failing; its high
                # watermark tells.
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), cached=True
                )
                if 0 <= high <= last[partition]:
                    raise _different(
                        topic,
                        root,
                        partition,
                        f"ends at offset {high}, before offset {last[partition]} that the "
                        "archive holds",
                    )
    finally:
        consumer.close()
    return notes


def _compare(topic: str, root: object, partition: int, f: ArchiveFile, value: bytes | None) -> None:
    expected = _archived_event_id(f)
    try:
        found: str | None = decode(value)["event_id"]
    except DecodeError:
        found = None
    if found != expected:
        raise _different(
            topic,
            root,
            partition,
            f"holds event {found} at offset {f.last}, where the archive holds {expected}",
        )

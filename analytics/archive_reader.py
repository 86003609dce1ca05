"""One conversation's events read back from the archive, as replay wants them: the same
`RecordedEvent`s the log gave (topic, partition, offset and record timestamp included),
for when Kafka no longer holds the conversation (retention passed, a dev broker restarted).

Reads the finished files only, takes no lock (the archiver goes on writing), and keeps
each (partition, offset) once (a compaction's parts and merged file may both be listed).
Records the archiver could not decode carry no conversation id (the archive keeps no
Kafka keys), so they are not among a conversation's events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pyarrow.dataset as ds

from agentlog.analytics.archive_files import ArchiveFile, archive_files, next_offsets, topic_root
from agentlog.analytics.columns import SCHEMA
from agentlog.consumers.projection import RecordedEvent
from agentlog.errors import ArchiveError
from agentlog.serde import micros_of

_COLUMNS = [
    "topic",
    "partition",
    "offset",
    "kafka_timestamp",
    "event_id",
    "conversation_id",
    "occurred_at",
    "event_type",
    "source_service",
    "source_agent",
    "source_version",
    "trace_id",
    "span_id",
    "causation_id",
    "payload_json",
]
# A listed file can vanish under a reader once a compaction's grace period ends: list again.
_ATTEMPTS = 3


def archived_event(row: dict[str, Any]) -> RecordedEvent:
    """An archive row (of a decoded record) as the event the log gave."""
    occurred = row["occurred_at"]
    timestamp = row["kafka_timestamp"]
    return RecordedEvent(
        row["event_id"],
        row["conversation_id"],
        micros_of(occurred),
        row["event_type"],
        orjson.loads(row["payload_json"]),
        {
            "service": row["source_service"],
            "agent": row["source_agent"],
            "version": row["source_version"],
        },
        row["causation_id"],
        row["trace_id"],
        row["span_id"],
        row["topic"],
        row["partition"],
        row["offset"],
        None if timestamp is None else micros_of(timestamp) // 1000,
    )


class ParquetArchive:
    """The archive in `folder` (`Settings.archive_root`), read for replay (it has the
    shape of `agentlog.replay.archived.ConversationArchive`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @property
    def where(self) -> str:
        return str(self.folder)

    def conversation_events(self, topic: str, conversation_id: str) -> list[RecordedEvent]:
        root = topic_root(self.folder, topic)
        for attempt in range(_ATTEMPTS):
            try:
                rows = _rows(archive_files(root), conversation_id)
            except FileNotFoundError:
                if attempt == _ATTEMPTS - 1:
                    raise ArchiveError(
                        f"the archive {root} kept changing while it was read; try again"
                    ) from None
                continue
            seen: set[tuple[int, int]] = set()
            events = []
            for row in sorted(rows, key=lambda r: (r["partition"], r["offset"])):
                where = (row["partition"], row["offset"])
                if where not in seen:
                    seen.add(where)
                    events.append(archived_event(row))
            return events
        raise AssertionError("unreachable: the last attempt returns or raises")

    def archived_up_to(self, topic: str) -> dict[int, int]:
        return next_offsets(archive_files(topic_root(self.folder, topic)))


def _rows(files: list[ArchiveFile], conversation_id: str) -> list[dict[str, Any]]:
    if not files:
        return []
    dataset = ds.dataset([str(f.path) for f in files], schema=SCHEMA, format="parquet")
    table = dataset.to_table(
        columns=_COLUMNS,
        filter=(pc.field("conversation_id") == conversation_id)
        & pc.field("decode_error").is_null(),
    )
    return table.to_pylist()  # type: ignore[no-any-return]

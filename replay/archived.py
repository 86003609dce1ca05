"""What replay asks of an archive of the log: one conversation's events, as they sat in
Kafka (topic, partition, offset, record timestamp), when Kafka no longer holds them.

Replay does not read the archive's files itself: their format belongs to
`agentlog.analytics`, and replay and analytics, both on the consumers layer, do not import
each other. The face passes an archive in (`agentlog.analytics.ParquetArchive` has this
shape), as a consumer-side runtime is handed a recorder.
"""

from __future__ import annotations

from typing import Protocol

from agentlog.consumers.projection import RecordedEvent


class ConversationArchive(Protocol):
    @property
    def where(self) -> str:
        """The archive as a user names it (its folder), for notes and errors."""
        ...

    def conversation_events(self, topic: str, conversation_id: str) -> list[RecordedEvent]:
        """The conversation's archived events of `topic`, in (partition, offset) order,
        each offset once; none: an empty list."""
        ...

    def archived_up_to(self, topic: str) -> dict[int, int]:
        """Partition -> the first offset of `topic` not archived."""
        ...

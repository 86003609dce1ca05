"""`conversation_index`: where each conversation sits in the log, so replay can jump there."""

from __future__ import annotations

from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles
from agentlog.events import EVENT_TYPES

TABLE = "agentlog_conversation_index"


def _key(event: RecordedEvent) -> tuple[str]:
    return (event.conversation_id,)


class ConversationIndex(Projection):
    name = "conversation_index"
    tables = (
        Table(
            TABLE,
            key=("conversation_id",),
            columns={
                "conversation_id": "text",
                "topic": "text",
                "partition": "bigint",
                "first_offset": "bigint",
                "last_offset": "bigint",
                "event_count": "bigint",
                "first_time": "timestamp",
                "last_time": "timestamp",
            },
            key_of=_key,
        ),
    )

    @handles(*EVENT_TYPES)
    def on_event(self, event: RecordedEvent, state: State) -> None:
        row = state.row(TABLE, (event.conversation_id,))
        if row["event_count"] == 0:
            row["topic"] = event.topic
            row["partition"] = event.partition
            row["first_offset"] = event.offset
            row["first_time"] = event.occurred_at
        row["event_count"] += 1
        row["last_offset"] = max(row["last_offset"] or 0, event.offset)
        row["last_time"] = max(row["last_time"] or 0, event.occurred_at)

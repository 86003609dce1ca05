"""`conversation_index`: where each conversation sits in the log, so replay can jump there."""

from __future__ import annotations

from agentlog.consumers.projection import Projection, RecordedEvent, State, Table, handles
from agentlog.consumers.projections.activity import Activity
from agentlog.events import EVENT_TYPES

TABLE = "agentlog_conversation_index"
ACTIVITY = Activity(first="first_time", last="last_time", count="event_count")


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
                **ACTIVITY.columns,
            },
            key_of=_key,
        ),
    )

    @handles(*EVENT_TYPES)
    def on_event(self, event: RecordedEvent, state: State) -> None:
        row = state.row(TABLE, (event.conversation_id,))
        if row["topic"] is None:  # the conversation's first event
            row["topic"] = event.topic
            row["partition"] = event.partition
            row["first_offset"] = event.offset
        row["last_offset"] = max(row["last_offset"], event.offset)
        ACTIVITY.fold(row, event)

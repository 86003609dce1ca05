"""A conversation's events, already read (from the Parquet archive, say), as the documents
a reviewer reads: its text transcript and its HTML timeline, the same as `agentlog
replay` shows for a conversation read from Kafka."""

from __future__ import annotations

from agentlog.consumers.projection import RecordedEvent
from agentlog.replay.conversation import Entry, Replay
from agentlog.replay.html import timeline_page
from agentlog.replay.locate import Location
from agentlog.replay.state import conversation_state
from agentlog.replay.transcript import transcript


def replay_of_events(conversation_id: str, events: list[RecordedEvent]) -> Replay:
    """The replay of a conversation whose events (in log order, one partition) were read
    from the archive: nothing stopped, its state folded from all of them."""
    first, last = events[0].offset, events[-1].offset
    location = Location(events[0].topic, events[0].partition, ((first, last + 1),), "archive")
    entries: list[Entry] = list(events)
    return Replay(
        conversation_id,
        location,
        entries,
        entries,
        conversation_state(events),
        len(events),
        last + 1,
        None,
        ["read from the Parquet archive"],
    )


def transcript_documents(conversation_id: str, events: list[RecordedEvent]) -> dict[str, str]:
    """File suffix -> text: the transcript (`txt`) and the HTML timeline (`html`) of a
    conversation's archived events."""
    replay = replay_of_events(conversation_id, events)
    return {"txt": "\n".join(transcript(replay)) + "\n", "html": timeline_page(replay)}

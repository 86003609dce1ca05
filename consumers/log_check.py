"""Is the log on the broker the one a sink's offsets were applied from?

Offsets only mean something in the log they were read from. A topic deleted and
created again under the same name (a restarted in-memory dev broker, a wiped Kafka)
starts over at offset 0, and seeking to the stored offsets would skip its first
records and mix two logs in one sink. Partitions added to the topic move
conversations to other partitions, so two consumers would update one conversation's
rows at once. Three checks, each with one error saying what differs and what to do:

- the topic id (Kafka gives every topic a unique one at creation) and the partition
  count, recorded in the sink, against the broker's (`check_identity`);
- the event id of the last record applied in each partition, against the record at
  that offset now (`check_last_applied`, by the one check of `agentlog.log_identity`,
  which words its verdicts too): this also catches brokers without topic ids;
- a record whose key the partitioner places in another partition under the recorded
  count (`Placement`): producers already write with more partitions.
"""

from __future__ import annotations

from agentlog.consumers.sinks.base import AppliedLog, LastApplied
from agentlog.errors import NotTheAppliedLog, PartitionsChanged
from agentlog.log_identity import FRESH_SINK, REFUSED, projection, what_the_log_holds, worded
from agentlog.partitioner import murmur2
from agentlog.settings import Settings
from agentlog.topics import TopicIdentity


def partitions_changed(topic: str, applied: int, now: int) -> str:
    return f"{topic} went from {applied} to {now} partitions"


def check_identity(topic: TopicIdentity, applied: AppliedLog, group: str, sink: str) -> None:
    """Raise unless `topic` is the log `applied` describes (and no member refused it)."""
    if applied.refused is not None:
        raise PartitionsChanged(_refusal(applied.refused, topic.name, group, sink))
    if applied.topic_id and topic.topic_id and applied.topic_id != topic.topic_id:
        raise NotTheAppliedLog(
            f"{sink} holds group {group}'s projection of {topic.name} with topic id "
            f"{applied.topic_id}, but the broker's {topic.name} has topic id {topic.topic_id}: "
            "the topic was deleted and created again (a restarted dev broker?), and the "
            f"offsets in the sink mean nothing in it; {FRESH_SINK}"
        )
    if applied.partitions != topic.partitions:
        reason = partitions_changed(topic.name, applied.partitions, topic.partitions)
        raise PartitionsChanged(_refusal(reason, topic.name, group, sink))


def _refusal(reason: str, topic: str, group: str, sink: str) -> str:
    return (
        f"{reason} since {sink} was built by group {group}: conversations moved "
        "partition, and applying on would let two consumers update one conversation's "
        f"rows and lose updates; stop every projector of group {group} and rebuild: "
        f"{FRESH_SINK}"
    )


def check_last_applied(
    settings: Settings, topic: str, last: dict[int, LastApplied], sink: str
) -> None:
    """Raise unless every partition holds, at its last applied offset, the event the
    sink applied there (the one log-identity check, `agentlog.log_identity`). A record
    gone to retention cannot be checked (the topic id was)."""
    held = what_the_log_holds(
        settings, topic, {p: (applied.offset, applied.event_id) for p, applied in last.items()}
    )
    for partition, here in sorted(held.items()):
        if here.verdict in REFUSED:
            raise NotTheAppliedLog(worded(here, topic, partition, projection(sink)))


class Placement:
    """Where the partitioner (murmur2, as agentlog's producers and Java's use it) puts a
    key on a topic of the recorded partition count. `of` remembers it per key (the
    runner reads it inline for every record); `place` computes it."""

    _REMEMBERED = 200_000

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.of: dict[bytes | None, int] = {}

    def place(self, key: bytes | None) -> int | None:
        """The key's partition (None for records without a key: placed anywhere)."""
        if key is None:
            return None
        if len(self.of) >= self._REMEMBERED:
            self.of.clear()
        where = self.of[key] = (murmur2(key) & 0x7FFFFFFF) % self.partitions
        return where

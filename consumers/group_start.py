"""Where a member of a group that commits its offsets in Kafka (a trigger runtime, a tool
worker) starts reading the partitions it is given.

A group with a committed offset on any partition of the topic resumes from its commits;
`start` is only for a *new* group. A new group's first positions are committed at once
(before anything is read), so a member that stops before its first commit, or a
partition that receives nothing for a while, resumes where the group started rather
than at the other end of the log. What was decided is said once through `notice`.
"""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from agentlog.errors import BrokerUnavailable
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom, first_offsets
from agentlog.topics import partition_count


class GroupStart:
    """Chooses the first offsets of the partitions assigned to a member of `group`."""

    def __init__(
        self,
        settings: Settings,
        topic: str,
        group: str,
        start: StartFrom = EARLIEST,
        *,
        asked: bool = False,
        notice: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.group = group
        self.start = start
        self.asked = asked  # `start` was asked for (not a default): say when it is ignored
        self.notice = notice
        self._new: bool | None = None  # decided on the first assignment

    def offsets(self, consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        """The offset to read first in each of `partitions` (OFFSET_BEGINNING: the
        oldest record still held). Called from the member's assignment callback."""
        if self._new is None:
            self._new = not self._committed(consumer, list(range(self._count())))
            self._say_once()
        committed = self._committed(consumer, partitions)
        missing = [p for p in partitions if p not in committed]
        if not self._new or not missing:
            return {p: committed.get(p, OFFSET_BEGINNING) for p in partitions}
        chosen = first_offsets(self.settings, self.topic, missing, self.start)
        to_commit = [TopicPartition(self.topic, p, o) for p, o in chosen.items()]
        if to_commit:
            try:
                consumer.commit(offsets=to_commit, asynchronous=False)
            except KafkaException as exc:
                raise BrokerUnavailable(
                    f"cannot commit the first offsets of new group {self.group}: "
                    f"{exc.args[0].str()}"
                ) from None
        return {**committed, **chosen}

    def _say_once(self) -> None:
        if self.notice is None:
            return
        if self._new:
            self.notice(
                f"new group {self.group}: starting {self.start.describe()} of {self.topic} "
                f"(--from earliest|latest|TIME chooses)"
            )
        elif self.asked:
            self.notice(
                f"group {self.group} resumes from its committed offsets: --from "
                f"{self.start.option} applies only to a new group"
            )

    def _count(self) -> int:
        return partition_count(self.settings, self.topic)

    def _committed(self, consumer: Consumer, partitions: list[int]) -> dict[int, int]:
        try:
            answer = consumer.committed(
                [TopicPartition(self.topic, p) for p in partitions],
                timeout=self.settings.assignment_timeout_s,
            )
        except KafkaException as exc:
            raise BrokerUnavailable(
                f"cannot read the committed offsets of group {self.group}: {exc.args[0].str()}"
            ) from None
        return {tp.partition: tp.offset for tp in answer if tp.offset >= 0}

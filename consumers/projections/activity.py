"""When a conversation was active and how many events it holds: one definition,
folded into `conversations` and `conversation_index` alike.

First and last are the earliest and latest `occurred_at` of the conversation's events,
whatever order they were applied in (clocks of different services disagree a little);
the count is of events applied, each event id once.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentlog.consumers.projection import RecordedEvent, Row


@dataclass(frozen=True)
class Activity:
    """The names of the three columns in one table."""

    first: str
    last: str
    count: str

    @property
    def columns(self) -> dict[str, str]:
        return {self.first: "timestamp", self.last: "timestamp", self.count: "bigint"}

    def fold(self, row: Row, event: RecordedEvent) -> None:
        at = event.occurred_at
        row[self.count] += 1
        first = row[self.first]
        if first is None or at < first:
            row[self.first] = at
        last = row[self.last]
        if last is None or at > last:
            row[self.last] = at

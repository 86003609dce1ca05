"""How long applied event ids are remembered: a window of event time.

A duplicate event (an application that produced it twice, a redelivery) carries the
same `event_id`, `occurred_at` and key as the original, so it lands in the original's
partition, in practice soon after it. The sink remembers every applied id with its
event time and partition; per partition, it forgets ids more than the window older
than the newest event applied from that partition. So the id table holds about one
window of events however long the projector runs, and a partition read behind the
others (a catch-up, another member) keeps its ids until its own events move on. A
duplicate of an event older than that is not recognised and is applied again.

Forgetting costs a DELETE, so a partition's ids are forgotten each time its horizon
has moved on by a sixteenth of the window since this projector first saw it, not
every batch.
"""

from __future__ import annotations

import time

# Event times ahead of this machine's clock by more than this are not trusted to move
# a horizon: one event from a producer with a wrong clock would forget every id.
CLOCK_SKEW_MICROS = 3600 * 1_000_000


class DedupWindow:
    def __init__(self, window_micros: int) -> None:
        self.window = window_micros
        self.newest: dict[int, int] = {}  # partition -> newest event time applied (µs)
        self.forgotten_to: dict[int, int] = {}  # partition -> horizon last forgotten up to

    def saw(self, newest: dict[int, int]) -> None:
        """Newest event time per partition in a batch about to be applied."""
        trusted = time.time_ns() // 1000 + CLOCK_SKEW_MICROS
        for partition, moment in newest.items():
            moment = min(moment, trusted)
            if moment > self.newest.get(partition, moment - 1):
                self.newest[partition] = moment

    def forget_due(self) -> dict[int, int]:
        """Per partition whose horizon moved on far enough since last time, the event
        time to forget ids before (and remember it as forgotten)."""
        due = {}
        for partition, newest in self.newest.items():
            horizon = newest - self.window
            last = self.forgotten_to.setdefault(partition, horizon)
            if horizon - last >= self.window // 16:
                due[partition] = self.forgotten_to[partition] = horizon
        return due

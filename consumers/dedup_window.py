"""How long applied event ids are remembered: a window of event time.

A duplicate event (an application that produced it twice, a redelivery) carries the
same `event_id` and `occurred_at` as the original and, in practice, turns up soon
after it. The sink remembers every applied id with its event time and forgets those
more than the window older than the newest event this projector applied; so the id
table holds about one window of events however long the projector runs. A duplicate of
an event older than that is not recognised and is applied again.

Forgetting costs one DELETE, so it runs each time the horizon has moved on by a
sixteenth of the window, not every batch.
"""

from __future__ import annotations

import time

# Event times ahead of this machine's clock by more than this are not trusted to move
# the horizon: one event from a producer with a wrong clock would forget every id.
CLOCK_SKEW_MICROS = 3600 * 1_000_000


class DedupWindow:
    def __init__(self, window_micros: int) -> None:
        self.window = window_micros
        self.newest: int | None = None  # newest event time applied, UTC microseconds
        self.forgotten_to: int | None = None  # the horizon last forgotten up to

    @property
    def horizon(self) -> int | None:
        """Event ids older than this (event time) may be forgotten."""
        return None if self.newest is None else self.newest - self.window

    def saw(self, newest_in_batch: int) -> None:
        now = time.time_ns() // 1000
        newest = min(newest_in_batch, now + CLOCK_SKEW_MICROS)
        if self.newest is None or newest > self.newest:
            self.newest = newest

    def forget_due(self) -> int | None:
        """The horizon to forget up to now, if it moved on far enough since last time."""
        horizon = self.horizon
        if horizon is None:
            return None
        if self.forgotten_to is not None and horizon - self.forgotten_to < self.window // 16:
            return None
        self.forgotten_to = horizon
        return horizon

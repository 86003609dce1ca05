"""A projection that is not a pure function of the log: it stamps rows with the wall
clock, so rebuilding it from the log cannot give the rows the live sink holds."""

from __future__ import annotations

import time

from agentlog.consumers import Projection, Table, handles


class WallClock(Projection):
    name = "wall_clock"
    tables = (
        Table(
            "test_wall_clock",
            key=("conversation_id",),
            columns={"conversation_id": "text", "seen_at_ns": "bigint"},
            key_of=lambda e: (e.conversation_id,),
        ),
    )

    @handles("conversation_started")
    def stamp(self, event, state) -> None:
        state.row("test_wall_clock", (event.conversation_id,))["seen_at_ns"] = time.time_ns()

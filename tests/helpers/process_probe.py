"""A projection that stores the process-wide settings its handler ran under (for tests
that run the projector in this process or in a subprocess with `--projection`)."""

from __future__ import annotations

import gc
import sys

from agentlog.consumers import Projection, RecordedEvent, State, Table, handles
from agentlog.events import EVENT_TYPES

TABLE = "process_settings"


class ProcessSettingsProbe(Projection):
    name = "process_settings_probe"
    tables = (
        Table(
            TABLE,
            key=("conversation_id",),
            columns={"conversation_id": "text", "gc_threshold0": "bigint", "switch_us": "bigint"},
            key_of=lambda e: (e.conversation_id,),
        ),
    )

    @handles(*EVENT_TYPES)
    def observe(self, event: RecordedEvent, state: State) -> None:
        row = state.row(TABLE, (event.conversation_id,))
        row["gc_threshold0"] = gc.get_threshold()[0]
        row["switch_us"] = round(sys.getswitchinterval() * 1_000_000)

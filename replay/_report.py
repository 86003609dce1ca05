"""What a re-run found: the calls served from the log, those answered live, the first
divergence, the recorded calls never made."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentlog.replay._matching import Divergence, RecordedCall
from agentlog.replay.transcript import counted


@dataclass
class RerunReport:
    original: str
    new_conversation_id: str
    mode: str
    served: list[RecordedCall] = field(default_factory=list)
    live_calls: list[str] = field(default_factory=list)  # answered live, after the fork
    divergence: Divergence | None = None
    unconsumed: list[RecordedCall] = field(default_factory=list)
    recorded: bool = False  # written to the log as a new conversation

    @property
    def matched(self) -> bool:
        return self.divergence is None and not self.unconsumed

    def lines(self) -> list[str]:
        written = f" as {self.new_conversation_id}" if self.recorded else " (not recorded)"
        live = f", {len(self.live_calls)} answered live after the fork" if self.live_calls else ""
        out = [
            f"re-ran {self.original} ({self.mode}){written}: "
            f"{counted(len(self.served), 'call')} served from the log{live}"
        ]
        if self.divergence is not None:
            out.append(f"divergence ({self.divergence.kind}): {self.divergence.message}")
        for call in self.unconsumed:
            out.append(f"not called: {call.describe()}")
        if self.matched:
            out.append("no divergence: the code made the recorded calls")
        return out

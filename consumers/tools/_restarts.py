"""How often tool calls are started more than once, from the workers' start markers.

Before each attempt a tool worker writes a start marker naming the call and the attempt
to the request's tool-requests partition (`tool_protocol`). A call whose markers show an
attempt after the first, or one attempt started twice, was started again: either retried
after a transient failure, or handed to another worker because the one running it
stopped mid-call (crash, lost partition). The markers do not tell those two apart, so
the figure counts both; it is what the log shows, not a guess at which.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentlog.reader import partition_offset, read_partitions
from agentlog.settings import Settings
from agentlog.tool_protocol import TOOL_CALL_ATTEMPT, TOOL_CALL_ID, TOOL_CALL_STARTED, header


@dataclass(frozen=True)
class Restarts:
    """Of the calls with a start marker in the window, how many were started again."""

    calls: int
    restarted: int

    @property
    def rate(self) -> float | None:
        """restarted / calls; None when no call started in the window."""
        return self.restarted / self.calls if self.calls else None


def restarts_of(starts: Iterable[tuple[str, int]]) -> Restarts:
    """The restarts among (call id, attempt) start markers: a call counts as restarted
    if any of its markers is of an attempt after the first (its earlier attempt may lie
    before the window), or if one attempt was started twice."""
    seen: dict[str, set[int]] = {}
    restarted: set[str] = set()
    for call_id, attempt in starts:
        attempts = seen.setdefault(call_id, set())
        if attempt > 1 or attempt in attempts:
            restarted.add(call_id)
        attempts.add(attempt)
    return Restarts(len(seen), len(restarted))


def tool_call_restarts(settings: Settings, ends: dict[int, int], window: int) -> Restarts:
    """The restarts among the start markers in the last `window` records of each
    tool-requests partition (`ends`: the partitions' ends, from the fetch high watermark).
    Only headers are read; nothing is decoded."""
    starts = {p: max(0, end - window) for p, end in ends.items() if end > 0}
    if not starts:
        return Restarts(0, 0)

    def markers() -> Iterable[tuple[str, int]]:
        for record in read_partitions(
            settings,
            settings.tool_requests_topic,
            partitions=list(starts),
            start_offsets=starts,
            idle_timeout=10.0,
        ):
            partition, offset = partition_offset(record)
            if offset >= ends[partition]:
                continue  # written since the ends were taken: outside the window
            headers = record.headers()
            if header(headers, TOOL_CALL_STARTED) is None:
                continue
            call_id = header(headers, TOOL_CALL_ID)
            attempt = header(headers, TOOL_CALL_ATTEMPT) or b"1"
            if call_id is not None and attempt.isdigit():
                yield call_id.decode(), int(attempt)

    return restarts_of(markers())

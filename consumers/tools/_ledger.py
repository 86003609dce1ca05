"""Which tool calls already ended, for a worker that has just been given partitions.

A worker commits a request's offset only after Kafka acknowledged the call's ending, so
a worker that dies between the two leaves requests whose call has ended behind the
committed offset; the next owner of the partition is handed them again. Before running
any of them it reads the log: the requests from the committed offset to the end of the
partition (only their headers: each request names the events offset of its requested
event, each start marker a call and an attempt a worker began), then the events
partition of the same number from the lowest of those offsets to its end (only the
headers workers put on the endings they write). A request whose call ended there is
acknowledged without running the tool again; one with attempts begun goes on with the
next attempt.

Requests that arrive after this read cannot have been run by an earlier owner (it had
lost the partition before this worker was given it), so only the requests below the
end found here are checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING

from agentlog.errors import DecodeError
from agentlog.reader import partition_offset, read_partitions
from agentlog.serde import decode
from agentlog.settings import Settings
from agentlog.tool_protocol import (
    REQUESTED_OFFSET,
    TOOL_CALL_ATTEMPT,
    TOOL_CALL_ENDED,
    TOOL_CALL_ID,
    TOOL_CALL_STARTED,
    header,
)


@dataclass
class CallLedger:
    """What one tool-requests partition's log said when its worker was given it."""

    # Requests below this offset were there already: look them up before running them.
    check_below: int
    ended: set[str] = field(default_factory=set)
    # call id -> the highest attempt a worker started
    attempts: dict[str, int] = field(default_factory=dict)

    def needs_check(self, offset: int) -> bool:
        return offset < self.check_below


def read_ledgers(settings: Settings, starts: dict[int, int]) -> dict[int, CallLedger]:
    """A ledger per tool-requests partition, from its `starts` (committed offsets, or
    OFFSET_BEGINNING) to its end."""
    ledgers = {p: CallLedger(check_below=max(0, start)) for p, start in starts.items()}
    # The lowest events offset any unfinished request's requested event has.
    scan_from: dict[int, int] = {}
    for message in read_partitions(
        settings, settings.tool_requests_topic, partitions=list(starts), start_offsets=starts
    ):
        partition, offset = partition_offset(message)
        ledger = ledgers[partition]
        ledger.check_below = offset + 1
        headers = message.headers()
        started = header(headers, TOOL_CALL_STARTED)
        call_id = header(headers, TOOL_CALL_ID)
        if started is not None and call_id is not None:
            name = call_id.decode()
            attempt = int(header(headers, TOOL_CALL_ATTEMPT) or b"1")
            ledger.attempts[name] = max(attempt, ledger.attempts.get(name, 0))
            continue
        raw = header(headers, REQUESTED_OFFSET)
        # Without the header (a request not sent by ToolClient) only a full read is safe.
        requested = int(raw) if raw is not None and raw.isdigit() else OFFSET_BEGINNING
        scan_from[partition] = min(requested, scan_from.get(partition, requested))
    if not scan_from:
        return ledgers
    for message in read_partitions(
        settings, settings.events_topic, partitions=list(scan_from), start_offsets=scan_from
    ):
        headers = message.headers()
        if headers and header(headers, TOOL_CALL_ENDED) is not None:
            call_id = header(headers, TOOL_CALL_ID)
            if call_id is not None:
                ledgers[partition_offset(message)[0]].ended.add(call_id.decode())
    return ledgers


@dataclass(frozen=True)
class PendingRequest:
    """A request at or after its group's committed offset whose call has no ending."""

    partition: int
    offset: int
    tool_call_id: str
    tool_name: str
    age_s: float


def pending_requests(
    settings: Settings, committed: dict[int, int], partitions: list[int], now: float
) -> list[PendingRequest]:
    """The requests of `partitions` from the group's `committed` offsets (the log start
    where it committed nothing) to the end whose call has no ending on the events topic,
    oldest first; `now` (UNIX seconds) gives their age."""
    starts = {p: committed.get(p, OFFSET_BEGINNING) for p in partitions}
    requests: dict[str, tuple[int, int, str, float]] = {}
    scan_from: dict[int, int] = {}
    for message in read_partitions(
        settings, settings.tool_requests_topic, partitions=partitions, start_offsets=starts
    ):
        headers = message.headers()
        if header(headers, TOOL_CALL_STARTED) is not None:
            continue
        partition, offset = partition_offset(message)
        try:
            record = decode(
                message.value(),
                topic=settings.tool_requests_topic,
                partition=partition,
                offset=offset,
            )
        except DecodeError:
            continue  # dead-lettered by the workers, not pending
        name, body = record["payload"]
        if name != "agentlog.ToolCallRequested":
            continue
        kind, millis = message.timestamp()
        age = max(0.0, now - millis / 1000) if kind and millis >= 0 else 0.0
        requests[body["tool_call_id"]] = (partition, offset, body["tool_name"], age)
        raw = header(headers, REQUESTED_OFFSET)
        requested = int(raw) if raw is not None and raw.isdigit() else OFFSET_BEGINNING
        scan_from[partition] = min(requested, scan_from.get(partition, requested))
    if scan_from:
        for message in read_partitions(
            settings, settings.events_topic, partitions=list(scan_from), start_offsets=scan_from
        ):
            headers = message.headers()
            if headers and header(headers, TOOL_CALL_ENDED) is not None:
                call_id = header(headers, TOOL_CALL_ID)
                if call_id is not None:
                    requests.pop(call_id.decode(), None)
    pending = [
        PendingRequest(p, o, call, name, age) for call, (p, o, name, age) in requests.items()
    ]
    return sorted(pending, key=lambda r: -r.age_s)

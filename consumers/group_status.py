"""How far behind each consumer group is: the figures of `agentlog status`.

Per group and partition: the committed offset, the partition's end, the lag, and the
age of the oldest record not yet processed; per group: its members, how often its
work is started again (tool workers only), its dead letters and parked conversations.

Ends come from the fetch high watermark (`reader.partition_ends`), never ListOffsets
(Tansu answers it wrongly). The oldest unprocessed record is the record at the
committed offset, read, its timestamp taken (on the events topic that is the event's
`occurred_at`). A projector keeps its offsets in its sink (Kafka's are only advice
there), so when a sink is given and holds offsets of the group for this log, those are
the ones shown, and the report says where each group's offsets came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING

from agentlog.consumers.consumer_groups import groups_on_broker
from agentlog.consumers.dead_letters import dead_letter_states
from agentlog.consumers.group_activity import GroupActivity, offsets_key
from agentlog.consumers.log_check import NotTheAppliedLog, check_identity
from agentlog.consumers.runner import DEFAULT_GROUP
from agentlog.consumers.sinks.base import Sink
from agentlog.consumers.tools import pending_requests, tool_call_restarts
from agentlog.consumers.triggers import GROUP_PREFIX as TRIGGER_GROUP_PREFIX
from agentlog.errors import ConfigurationError
from agentlog.reader import Found, partition_ends, partition_offset, records_at
from agentlog.settings import Settings
from agentlog.topics import topic_identity

PROJECTOR = "projector"
TOOL_WORKERS = "tool workers"
TRIGGERS = "trigger runtime"  # `agentlog agents run`: its group is agentlog-agents-<name>
CONSUMER = "consumer"  # any other group on the events topic

REDELIVERY_NOT_OBSERVABLE = "n/a"


@dataclass(frozen=True)
class PartitionStatus:
    topic: str
    partition: int
    committed: int | None  # None: the group committed nothing here (it starts at the log start)
    end: int
    lag: int | None  # None: unknown
    oldest_unprocessed_age_s: float | None  # 0 when nothing waits; None when unknown


@dataclass(frozen=True)
class GroupStatus:
    group: str
    kind: str  # PROJECTOR, TOOL_WORKERS or CONSUMER
    state: str
    members: int | None  # None: the broker does not report them (Tansu)
    offsets_from: str  # "kafka", or "sink <description>"
    partitions: list[PartitionStatus]
    # Fraction of the calls started in the window that were started again; None: n/a.
    redelivery_rate: float | None
    redelivery_basis: str  # what the rate was measured on, or why it is n/a
    dlq_depth: int
    parked_conversations: int
    notes: list[str] = field(default_factory=list)
    # Tool workers: requests past the committed offset with no ending for longer than
    # the bound asked for (a caller waiting on them has likely timed out); None: n/a.
    overdue_requests: int | None = None
    # Seconds the group has had no member and the same offsets, once that is longer than
    # `status_idle_after` (None: not idle): shown as idle, left out of alerting figures.
    idle_for_s: float | None = None

    @property
    def idle(self) -> bool:
        return self.idle_for_s is not None

    @property
    def lag(self) -> int | None:
        lags = [p.lag for p in self.partitions]
        return None if not lags or None in lags else sum(p or 0 for p in lags)

    @property
    def oldest_unprocessed_age_s(self) -> float | None:
        ages = [p.oldest_unprocessed_age_s for p in self.partitions]
        return None if not ages or None in ages else max(a or 0.0 for a in ages)


@dataclass(frozen=True)
class DeadLetterFigures:
    depth: int  # dead letters of the group
    parked_conversations: int  # conversations waiting behind one of them


def dead_letter_figures(
    settings: Settings, groups: Iterable[str], timeout: float = 5.0
) -> dict[str, DeadLetterFigures]:
    """DLQ depth (dead letters not yet dealt with: open, or a trigger's redrive or skip
    under way; a purged or redriven projection letter no longer counts) and parked
    conversations per group, from one read of the dead-letter topic (the one fold)."""
    states = dead_letter_states(settings, idle_timeout=timeout)
    depth = states.open_by_group()
    parked = states.parked_conversations()
    return {
        group: DeadLetterFigures(depth.get(group, 0), len(parked.get(group, set())))
        for group in groups
    }


@dataclass(frozen=True)
class StatusReport:
    groups: list[GroupStatus]
    taken_at: float  # UNIX time the figures were taken
    window: int  # records per tool-requests partition the redelivery rate looks at


def collect_status(
    settings: Settings,
    *,
    groups: Iterable[str] = (),
    sink: Sink | None = None,
    timeout: float = 5.0,
    window: int = 10_000,
    pending_after: float = 60.0,
    activity: GroupActivity | None = None,
    forget: Iterable[str] = (),
) -> StatusReport:
    """The status of the groups consuming agentlog's events and tool-requests topics
    (or of the groups named). Every wait is bounded by `timeout` seconds per step.

    With `activity`, a group without members whose offsets have not moved for
    `settings.status_idle_after` is idle; the groups in `forget` (which must have no
    member) and those forgotten before are left out until their offsets move. Tool
    worker groups count their requests without an ending for over `pending_after` s."""
    forgetting = set(forget)
    topics = [settings.events_topic, settings.tool_requests_topic]
    found = groups_on_broker(settings, topics, named=groups, timeout=timeout)
    taken_at = time.time()
    ends: dict[str, dict[int, int]] = {}

    def ends_of(topic: str) -> dict[int, int]:
        if topic not in ends:
            ends[topic] = partition_ends(settings, topic, timeout=timeout)
        return ends[topic]

    sink_offsets = _sink_offsets(settings, sink, [g.group for g in found], timeout)
    dead = dead_letter_figures(settings, [g.group for g in found], timeout)
    restarts = None
    statuses = []
    for group in found:
        from_sink, notes = sink_offsets.get(group.group, (None, []))
        committed = _by_topic(group.committed)
        if from_sink is not None:
            committed[settings.events_topic] = from_sink
        partitions = []
        for topic in [t for t in topics if t in committed]:
            partitions += _partitions(
                settings, topic, committed[topic], ends_of(topic), taken_at, timeout
            )
        idle_for = None
        if activity is not None:
            key = offsets_key(committed)
            without_members = group.state in _WITHOUT_MEMBERS
            if group.group in forgetting:
                if not without_members:
                    raise ConfigurationError(
                        f"group {group.group} is {group.state}: only a group without "
                        "members can be forgotten (stop its members first)"
                    )
                activity.forget(group.group, key, taken_at)
            if activity.forgotten(group.group, key):
                continue
            quiet_for = taken_at - activity.observe(group.group, key, taken_at)
            if without_members and quiet_for >= settings.status_idle_after.total_seconds():
                idle_for = quiet_for
        kind = _kind(settings, group.group, committed, from_sink is not None)
        if kind == TOOL_WORKERS:
            if restarts is None:
                restarts = tool_call_restarts(
                    settings, ends_of(settings.tool_requests_topic), window
                )
            rate = restarts.rate
            basis = (
                f"{restarts.restarted} of {restarts.calls} tool calls started in the last "
                f"{window:,} records of each {settings.tool_requests_topic} partition were "
                "started again (retry or another worker)"
            )
        else:
            rate, basis = None, f"{REDELIVERY_NOT_OBSERVABLE}: not observable from the log"
        overdue = None
        if kind == TOOL_WORKERS:
            overdue, said = _overdue(settings, committed, ends_of, taken_at, pending_after)
            notes = notes + said
        statuses.append(
            GroupStatus(
                group=group.group,
                kind=kind,
                state=group.state,
                members=group.members,
                offsets_from="kafka" if from_sink is None else f"sink {_described(sink)}",
                partitions=partitions,
                redelivery_rate=rate,
                redelivery_basis=basis,
                dlq_depth=dead[group.group].depth,
                parked_conversations=dead[group.group].parked_conversations,
                notes=notes,
                overdue_requests=overdue,
                idle_for_s=idle_for,
            )
        )
    return StatusReport(statuses, taken_at, window)


def _overdue(
    settings: Settings,
    committed: dict[str, dict[int, int]],
    ends_of: Callable[[str], dict[int, int]],
    now: float,
    pending_after: float,
) -> tuple[int, list[str]]:
    """How many requests have waited for an ending longer than `pending_after`, and a
    note naming the oldest (a worker that passed over a request shows here)."""
    topic = settings.tool_requests_topic
    pending = pending_requests(settings, committed.get(topic, {}), sorted(ends_of(topic)), now)
    overdue = [r for r in pending if r.age_s > pending_after]
    if not overdue:
        return 0, []
    oldest = overdue[0]
    return len(overdue), [
        f"{len(overdue)} tool request(s) pending longer than {pending_after:g}s; oldest "
        f"{oldest.tool_call_id} ({oldest.tool_name}), {oldest.age_s:.0f}s, at "
        f"{topic}[{oldest.partition}]@{oldest.offset}"
    ]


# Group states in which nobody consumes.
_WITHOUT_MEMBERS = ("empty", "dead")


def _described(sink: Sink | None) -> str:
    return sink.description if sink is not None else "-"


def _by_topic(committed: dict[tuple[str, int], int]) -> dict[str, dict[int, int]]:
    found: dict[str, dict[int, int]] = {}
    for (topic, partition), offset in committed.items():
        found.setdefault(topic, {})[partition] = offset
    return found


def _kind(settings: Settings, group: str, committed: dict[str, dict[int, int]], sink: bool) -> str:
    if settings.tool_requests_topic in committed:
        return TOOL_WORKERS
    if sink or group == DEFAULT_GROUP:
        return PROJECTOR
    if group.startswith(TRIGGER_GROUP_PREFIX):
        return TRIGGERS
    return CONSUMER


def _sink_offsets(
    settings: Settings, sink: Sink | None, groups: list[str], timeout: float
) -> dict[str, tuple[dict[int, int] | None, list[str]]]:
    """Per group, the events offsets the sink stored for it (None: none, or of another
    log, with a note saying so)."""
    if sink is None:
        return {}
    topic = settings.events_topic
    found: dict[str, tuple[dict[int, int] | None, list[str]]] = {}
    identity = None
    for group in groups:
        stored = sink.stored_offsets(group, topic)
        if not stored:
            continue
        applied = sink.stored_log(group, topic)
        if applied is not None:
            identity = identity or topic_identity(settings, topic, timeout)
            try:
                check_identity(identity, applied, group, sink.description)
            except NotTheAppliedLog as exc:
                note = f"the sink's offsets are not of this log, Kafka's shown instead: {exc}"
                found[group] = (None, [note])
                continue
        found[group] = (stored, [])
    return found


def _partitions(
    settings: Settings,
    topic: str,
    committed: dict[int, int],
    ends: dict[int, int],
    now: float,
    timeout: float,
) -> list[PartitionStatus]:
    """Each partition's figures; the first unprocessed record of every partition with
    work waiting is read (a partition never committed waits from the log start)."""
    waiting = {
        p: committed.get(p, OFFSET_BEGINNING)
        for p, end in ends.items()
        if end > committed.get(p, 0)
    }
    first = records_at(settings, topic, waiting, timeout) if waiting else {}
    statuses = []
    for partition, end in sorted(ends.items()):
        offset = committed.get(partition)
        here = first.get(partition)
        lag: int | None
        if offset is not None:
            lag = max(0, end - offset)
        elif end == 0:
            lag = 0
        else:  # it starts from the log start: the first record still there
            lag = end - _offset_of(here) if here is not None else None
        statuses.append(PartitionStatus(topic, partition, offset, end, lag, _age(here, lag, now)))
    return statuses


def _offset_of(found: Found) -> int:
    if found.record is not None:
        return partition_offset(found.record)[1]
    return found.end if found.end is not None else 0


def _age(found: Found | None, lag: int | None, now: float) -> float | None:
    if lag == 0:
        return 0.0
    if found is None:
        return None
    if found.record is None:
        return 0.0  # only transaction markers past the committed offset
    kind, millis = found.record.timestamp()
    if kind == 0 or millis < 0:  # TIMESTAMP_NOT_AVAILABLE
        return None
    return max(0.0, now - millis / 1000)

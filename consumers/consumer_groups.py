"""The consumer groups a broker knows, as its admin API answers for them: which groups
there are, how many members each has, and the offsets each committed.

Every request is bounded by one deadline. Two engine differences are kept visible
rather than papered over: Tansu answers DescribeGroups for a group with members as
`stable` with an empty member list, so the member count is unknown there (None), not 0;
and Tansu lists a group's state as `unknown`, so the state shown is DescribeGroups'.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, KafkaException
from confluent_kafka.admin import AdminClient

from agentlog.connection import cluster_metadata
from agentlog.errors import BrokerUnavailable
from agentlog.kafka_config import READER_GROUP_PREFIX, admin_client
from agentlog.settings import Settings

T = TypeVar("T")


def delete_if_left(settings: Settings, group: str) -> None:
    """Delete `group` if the broker describes it as empty (its members all left); anything
    else (a new group, members, no answer within the bound) leaves it as it is.

    For groups whose positions are set afresh (the demo's): Tansu can keep a reused
    group's rebalance from finishing when new members join (three tool workers started
    again and again in one group: of 22 restarts, 2 never assigned within 60 s; in a new
    or deleted group, 31 of 31 within 4.1 s)."""
    admin = admin_client(settings)  # held until it answers: its requests die with it
    wait = min(settings.assignment_timeout_s, 10.0)  # best effort, bounded
    try:
        described = admin.describe_consumer_groups([group], request_timeout=wait)[group]
        if described.result(timeout=wait).state != ConsumerGroupState.EMPTY:
            return
        admin.delete_consumer_groups([group], request_timeout=wait)[group].result(timeout=wait)
    except (KafkaException, FutureTimeout):
        pass  # not deleted (a member joined meanwhile): joining it is as before


def never_assigned(
    settings: Settings, topic: str, group: str, waited_s: float, *, answering: bool = True
) -> BrokerUnavailable:
    """The error of a member to which `group` assigned no partition of `topic` within
    `waited_s` seconds of subscribing. `answering`: the member's client reported no
    outage meanwhile, so what did not come is the group's assignment, not the broker."""
    waited = f"group {group} assigned this member no partition of {topic} within {waited_s:.0f}s"
    if not answering:
        return BrokerUnavailable(f"{waited}: Kafka at {settings.bootstrap_servers} does not answer")
    return BrokerUnavailable(
        f"{waited}, though Kafka at {settings.bootstrap_servers} reported no outage: the "
        "group's rebalance did not finish (a member that died while joining holds it until "
        "its poll interval runs out; Tansu can also hold up a group whose earlier members "
        "left); run again later, or use a group of another name"
    )


# States in which a group has members (so an empty member list means "not reported").
_WITH_MEMBERS = {
    ConsumerGroupState.STABLE,
    ConsumerGroupState.PREPARING_REBALANCING,
    ConsumerGroupState.COMPLETING_REBALANCING,
}


@dataclass(frozen=True)
class GroupOnBroker:
    """One consumer group as the broker describes it."""

    group: str
    state: str  # stable, empty, preparing_rebalancing, ..., dead
    members: int | None  # None: the broker does not report members (Tansu)
    # (topic, partition) -> the next offset the group will read, as it committed it
    committed: dict[tuple[str, int], int]


def groups_on_broker(
    settings: Settings,
    topics: Iterable[str],
    *,
    named: Iterable[str] = (),
    timeout: float = 5.0,
) -> list[GroupOnBroker]:
    """The groups that committed offsets on any of `topics` (or, if `named` is given,
    those groups, whatever they committed), described; sorted by name.

    Readers' throwaway groups (they never commit) are left out. Raises
    BrokerUnavailable when the broker does not answer within `timeout` seconds."""
    wanted = set(topics)
    admin = admin_client(settings)
    deadline = time.monotonic() + timeout
    cluster_metadata(admin, settings, timeout)  # a down broker fails here, in one line
    chosen = sorted(set(named)) or _listed_groups(admin, settings, deadline)
    offset_requests = {
        group: admin.list_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group)], request_timeout=_left(deadline)
        )[group]
        for group in chosen
    }
    committed: dict[str, dict[tuple[str, int], int]] = {}
    for group, request in offset_requests.items():
        answer = _answer(request, deadline, settings, f"the offsets of group {group}")
        offsets = {
            (tp.topic, tp.partition): tp.offset
            for tp in answer.topic_partitions or []
            if tp.offset >= 0 and (named or tp.topic in wanted)
        }
        if offsets or named:
            committed[group] = offsets
    if not committed:
        return []
    described = admin.describe_consumer_groups(list(committed), request_timeout=_left(deadline))
    found = []
    for group, offsets in sorted(committed.items()):
        description = _answer(described[group], deadline, settings, f"group {group}")
        state = description.state
        members: int | None = len(description.members)
        if members == 0 and state in _WITH_MEMBERS:
            members = None
        found.append(GroupOnBroker(group, _state_name(state), members, offsets))
    return found


def _listed_groups(admin: AdminClient, settings: Settings, deadline: float) -> list[str]:
    listed = _answer(
        admin.list_consumer_groups(request_timeout=_left(deadline)),
        deadline,
        settings,
        "the list of consumer groups",
    )
    return sorted(
        g.group_id for g in listed.valid if not g.group_id.startswith(READER_GROUP_PREFIX)
    )


def _state_name(state: Any) -> str:
    name = getattr(state, "name", None)
    return str(name).lower() if name else "unknown"


def _left(deadline: float) -> float:
    # librdkafka refuses a request timeout of zero; a spent deadline fails at once anyway.
    return max(0.1, deadline - time.monotonic())


def _answer(future: Future[T], deadline: float, settings: Settings, what: str) -> T:
    try:
        return future.result(timeout=_left(deadline))
    except FutureTimeout:
        raise BrokerUnavailable(
            f"Kafka at {settings.bootstrap_servers} did not report {what} in time"
        ) from None
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"Kafka at {settings.bootstrap_servers} could not report {what}: "
            f"{exc.args[0].str() if exc.args else exc}"
        ) from None

"""The three agentlog topics, created idempotently and described."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import (
    AdminClient,
    BrokerMetadata,
    ConfigResource,
    NewTopic,
    TopicMetadata,
)

from agentlog.connection import ReportingAdmin, anyone_listening, cluster_metadata
from agentlog.dev_state import running_record
from agentlog.errors import AgentlogError, BrokerUnavailable, TopicError
from agentlog.kafka_config import admin_client, client_config
from agentlog.settings import Settings


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


@dataclass(frozen=True)
class TopicDescription:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str]


def replication_for(settings: Settings, brokers: int) -> tuple[int, int]:
    """The replication factor of new topics (the setting, else as many replicas as the
    cluster has brokers, at most 3) and their min.insync.replicas: with three replicas an
    acks=all write is acknowledged once two have it, so one broker may be down and no
    acknowledged write lives on one disk only."""
    replicas = settings.replication_factor or max(1, min(3, brokers))
    return replicas, 2 if replicas >= 3 else 1


def topic_specs(
    settings: Settings, partitions: int | None = None, brokers: int = 1
) -> list[TopicSpec]:
    count = partitions or settings.partitions
    rf, min_insync = replication_for(settings, brokers)
    # Stated on each topic of a cluster, not left to the broker default: the dev cluster's
    # default (2) is more in-sync replicas than a topic of one or two replicas can have.
    # A single broker (Tansu included) needs no setting.
    replicated = {"min.insync.replicas": str(min_insync)} if rf > 1 or brokers > 1 else {}
    return [
        TopicSpec(
            settings.events_topic,
            count,
            rf,
            {"retention.ms": "-1", "cleanup.policy": "delete", **replicated},
        ),
        TopicSpec(
            settings.tool_requests_topic,
            count,
            rf,
            {"retention.ms": str(settings.tool_requests_retention_ms), **replicated},
        ),
        TopicSpec(
            settings.dlq_topic,
            count,
            rf,
            {"retention.ms": str(settings.dlq_retention_ms), **replicated},
        ),
    ]


def create_topics(settings: Settings, partitions: int | None = None) -> dict[str, str]:
    """Create missing topics, replicated as the cluster found allows; returns name ->
    "created" or "exists"."""
    admin = admin_client(settings)
    metadata = cluster_metadata(admin, settings)
    existing = metadata.topics
    specs = topic_specs(settings, partitions, brokers=len(metadata.brokers))
    outcome = {s.name: "exists" for s in specs if s.name in existing}
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return outcome
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=s.config) for s in missing],
        request_timeout=30,
    )
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                outcome[name] = "exists"
            else:
                raise TopicError(f"cannot create topic {name}: {error.str()}") from None
    _wait_until_listed(admin, settings, [s for s in missing if outcome[s.name] == "created"])
    return outcome


def _wait_until_listed(admin: AdminClient, settings: Settings, specs: list[TopicSpec]) -> None:
    """Kafka answers CreateTopics before every broker's metadata lists the new topics;
    wait (bounded) until each broker of the cluster lists them, so that whoever uses them
    next finds them whichever broker it asks."""
    deadline = time.monotonic() + 30
    brokers = cluster_metadata(admin, settings).brokers.values()
    askers = [admin] if len(brokers) < 2 else [_admin_of(settings, b) for b in brokers]
    for asker in askers:
        while not _lists(cluster_metadata(asker, settings).topics, specs):
            if time.monotonic() > deadline:
                raise TopicError(
                    f"topics {[s.name for s in specs]} were created but Kafka at "
                    f"{settings.bootstrap_servers} did not list them within 30s"
                )
            time.sleep(0.1)


def _admin_of(settings: Settings, broker: BrokerMetadata) -> AdminClient:
    """An admin client whose only bootstrap address is this broker (that is the broker
    its metadata requests go to first)."""
    return ReportingAdmin(
        {**client_config(settings), "bootstrap.servers": f"{broker.host}:{broker.port}"}
    )


def _lists(topics: dict[str, TopicMetadata], specs: list[TopicSpec]) -> bool:
    return all(
        s.name in topics
        and topics[s.name].error is None
        and len(topics[s.name].partitions) >= s.partitions
        for s in specs
    )


def ensure_topics(settings: Settings, *, answer_within: float = 2.0) -> None:
    """Before producing: agentlog's topics exist, or are created when that is allowed
    (`create_topics`, by default only on the dev broker), or a TopicError says in one line
    what to run, rather than a delivery failing after the producer's metadata wait.

    A broker that does not answer within `answer_within` seconds is left to the producer
    (its events wait in the spool, or are reported): recording never waits for Kafka."""
    if not anyone_listening(settings.bootstrap_servers or "", answer_within):
        return
    try:
        existing = cluster_metadata(admin_client(settings), settings, answer_within).topics
    except BrokerUnavailable:
        return
    missing = [s.name for s in topic_specs(settings) if s.name not in existing]
    if not missing:
        return
    if not creating_allowed(settings):
        raise TopicError(
            f"topic {missing[0]} does not exist: run `agentlog topics create`"
            + (f" (also missing: {', '.join(missing[1:])})" if missing[1:] else "")
        )
    create_topics(settings)


def creating_allowed(settings: Settings) -> bool:
    """`create_topics` if set, else whether the broker is the running dev broker."""
    if settings.create_topics is not None:
        return settings.create_topics
    try:
        record = running_record(settings)
    except AgentlogError:
        return False
    return record is not None and record.bootstrap == settings.bootstrap_servers


def partition_count(settings: Settings, topic: str) -> int:
    metadata = cluster_metadata(admin_client(settings), settings)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise TopicError(f"topic {topic} does not exist: run `agentlog topics create`")
    return len(metadata.topics[topic].partitions)


@dataclass(frozen=True)
class TopicIdentity:
    """What tells one log from another of the same name: Kafka gives every topic a
    unique id when it is created (a topic deleted and created again gets a new one)."""

    name: str
    topic_id: str | None  # None: the broker names no topic ids
    partitions: int


def topic_identity(settings: Settings, topic: str, timeout: float = 10) -> TopicIdentity:
    """The topic's id and partition count; TopicError if it does not exist,
    BrokerUnavailable if Kafka does not answer within `timeout` seconds."""
    admin = admin_client(settings)
    metadata = cluster_metadata(admin, settings, timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise TopicError(f"topic {topic} does not exist: run `agentlog topics create`")
    try:
        found = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
        description = found[topic].result()
    except KafkaException as exc:
        raise TopicError(f"cannot describe {topic}: {exc.args[0].str()}") from None
    uuid = description.topic_id
    unnamed = uuid is None or (
        uuid.get_most_significant_bits() == 0 and uuid.get_least_significant_bits() == 0
    )
    return TopicIdentity(topic, None if unnamed else str(uuid), len(description.partitions))


def describe_topics(settings: Settings) -> list[TopicDescription]:
    admin = admin_client(settings)
    metadata = cluster_metadata(admin, settings)
    found = []
    for spec in topic_specs(settings, brokers=len(metadata.brokers)):
        topic = metadata.topics.get(spec.name)
        if topic is None or topic.error is not None:
            raise TopicError(f"topic {spec.name} does not exist: run `agentlog topics create`")
        resource = ConfigResource(ConfigResource.Type.TOPIC, spec.name)
        try:
            entries = admin.describe_configs([resource])[resource].result(timeout=10)
        except KafkaException as exc:
            raise TopicError(f"cannot describe {spec.name}: {exc.args[0].str()}") from None
        replicas = len(next(iter(topic.partitions.values())).replicas) if topic.partitions else 0
        config = {
            k: v.value for k, v in entries.items() if k in spec.config and v.value is not None
        }
        found.append(TopicDescription(spec.name, len(topic.partitions), replicas, config))
    return found

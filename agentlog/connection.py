"""Which Kafka to talk to, and whether it answers."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from agentlog.dev_state import running_record
from agentlog.errors import BrokerUnavailable, ConfigurationError
from agentlog.settings import Settings


def resolve_bootstrap(settings: Settings) -> str:
    """`--bootstrap`, then AGENTLOG_BOOTSTRAP_SERVERS (both land in settings), then the
    running dev broker; otherwise a ConfigurationError saying what to do."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    record = running_record(settings)
    if record is not None:
        return record.bootstrap
    raise ConfigurationError(
        "no Kafka configured: pass --bootstrap HOST:PORT, set AGENTLOG_BOOTSTRAP_SERVERS, "
        "or run `agentlog dev up` to start the embedded broker"
    )


def resolved(settings: Settings) -> Settings:
    """The settings with the broker address filled in, so every part that receives them
    talks to the same Kafka without resolving it again."""
    if settings.bootstrap_servers:
        return settings
    return settings.with_overrides(bootstrap_servers=resolve_bootstrap(settings))


def cluster_metadata(
    admin: AdminClient, settings: Settings, timeout: float = 10
) -> ClusterMetadata:
    """Metadata, or BrokerUnavailable when nothing answers within `timeout` seconds."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:.0f}s "
            f"({exc.args[0].str()}); is the broker running?"
        ) from None

"""Which Kafka to talk to, and whether it answers."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from agentlog import devbroker
from agentlog.errors import BrokerUnavailable, ConfigurationError
from agentlog.settings import Settings


def resolve_bootstrap(settings: Settings) -> str:
    """`--bootstrap`, then AGENTLOG_BOOTSTRAP_SERVERS (both land in settings), then the
    running dev broker; otherwise a ConfigurationError saying what to do."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    broker = devbroker.current(settings)
    if broker is not None:
        return broker.bootstrap
    raise ConfigurationError(
        "no Kafka configured: pass --bootstrap HOST:PORT, set AGENTLOG_BOOTSTRAP_SERVERS, "
        "or run `agentlog dev up` to start the embedded broker"
    )


def admin_client(settings: Settings, bootstrap: str) -> AdminClient:
    return AdminClient(settings.client_config(bootstrap))


def cluster_metadata(admin: AdminClient, bootstrap: str, timeout: float = 10) -> ClusterMetadata:
    """Metadata, or BrokerUnavailable when nothing answers within `timeout` seconds."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"Kafka at {bootstrap} did not answer within {timeout:.0f}s ({exc.args[0].str()}); "
            "is the broker running?"
        ) from None

"""Which Kafka to talk to, and whether it answers."""

from __future__ import annotations

import socket

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata

from agentlog.dev_state import running_record
from agentlog.errors import BrokerUnavailable, ConfigurationError
from agentlog.settings import Settings


def resolve_bootstrap(settings: Settings) -> str:
    """`--bootstrap`, then AGENTLOG_BOOTSTRAP_SERVERS (both land in settings), then the
    running dev broker; otherwise a ConfigurationError saying what to do."""
    if settings.bootstrap_servers is not None:  # given, even empty: never the dev broker
        return checked_bootstrap(settings.bootstrap_servers)
    record = running_record(settings)
    if record is not None:
        return record.bootstrap
    raise ConfigurationError(
        "no Kafka configured: pass --bootstrap HOST:PORT, set AGENTLOG_BOOTSTRAP_SERVERS, "
        "or run `agentlog dev up` to start the embedded broker"
    )


def checked_bootstrap(servers: str) -> str:
    """`servers` if every entry is HOST:PORT; otherwise a ConfigurationError naming the
    bad entry (librdkafka would retry a malformed address forever)."""
    if not servers.strip():
        raise ConfigurationError(
            "bootstrap servers are empty: pass --bootstrap HOST:PORT (or set "
            "AGENTLOG_BOOTSTRAP_SERVERS); leave both unset to use the dev broker"
        )
    for entry in servers.split(","):
        address = entry.strip().split("://", 1)[-1]
        host, colon, port = address.rpartition(":")
        if not colon or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(
                f"bootstrap servers {servers!r}: {entry.strip()!r} is not HOST:PORT "
                "(for example 127.0.0.1:9092)"
            )
    return servers


def resolved(settings: Settings) -> Settings:
    """The settings with the broker address filled in, so every part that receives them
    talks to the same Kafka without resolving it again."""
    if settings.bootstrap_servers is not None:
        checked_bootstrap(settings.bootstrap_servers)
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


def anyone_listening(bootstrap: str, timeout: float) -> bool:
    """Whether any HOST:PORT of `bootstrap` accepts a TCP connection within `timeout`:
    a broker that is down refuses at once, where librdkafka would retry for its whole
    timeout. (A broker that listens may still not answer: callers bound that too.)"""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False

"""Every librdkafka setting agentlog uses, in one place: shared client settings, the
producer DESIGN.md fixes, group members and plain readers, and the low-latency variants
of those for the request/response path of tool calls."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from agentlog.connection import ReportingAdmin, resolve_bootstrap
from agentlog.settings import KAFKA_LOGGER, Settings


def client_config(settings: Settings) -> dict[str, Any]:
    """Settings shared by producers, consumers and admin clients."""
    config: dict[str, Any] = {
        "bootstrap.servers": resolve_bootstrap(settings),
        "client.id": settings.client_id,
        # librdkafka's own log lines go to Python logging, not straight to stderr.
        "logger": KAFKA_LOGGER,
    }
    optional = {
        "security.protocol": settings.security_protocol,
        "sasl.mechanism": settings.sasl_mechanism,
        "sasl.username": settings.sasl_username,
        "sasl.password": _secret(settings.sasl_password),
        # TLS beside SASL: the files were checked readable when the settings were made.
        "ssl.ca.location": _path(settings.ssl_ca_location),
        "ssl.certificate.location": _path(settings.ssl_certificate_location),
        "ssl.key.location": _path(settings.ssl_key_location),
        "ssl.key.password": _secret(settings.ssl_key_password),
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    return config


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


def admin_client(settings: Settings) -> ReportingAdmin:
    """An admin client whose failed requests can say why (`connection.cluster_metadata`)."""
    return ReportingAdmin(client_config(settings))


# librdkafka's default message.max.bytes: the largest record produce() accepts.
MAX_MESSAGE_BYTES = 1_000_000


def producer_config(settings: Settings, *, report_successes: bool = False) -> dict[str, Any]:
    """The settings DESIGN.md fixes for every agentlog producer (recorders, dead letters,
    benchmarks). `report_successes`: delivery callbacks for acknowledged records too
    (the spool's shipper needs their offsets)."""
    config = client_config(settings)
    config.update(
        {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": settings.compression,
            "linger.ms": settings.linger_ms,
            # Long enough to ride out a leader election: measured on the three-broker dev
            # cluster, a SIGKILLed leader is replaced after 8-12 s (the controller fences
            # it after broker.session.timeout.ms, 9 s); the 120 s default leaves room for a
            # broker that vanishes without closing its sockets (request.timeout.ms, 30 s,
            # then a retry to the new leader, idempotently).
            "delivery.timeout.ms": settings.delivery_timeout_ms,
            # Successes need no Python callback (unless asked for); failures always reach one.
            "delivery.report.only.error": not report_successes,
        }
    )
    return config


def dead_letter_producer_config(settings: Settings) -> dict[str, Any]:
    """A producer whose every delivery is reported: the projector records which dead
    letters Kafka took, so a batch retried after a rollback sends only the others."""
    config = producer_config(settings)
    config["delivery.report.only.error"] = False
    return config


def group_consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    """A consumer-group member that stores its own positions (offsets live in the sink)."""
    config = client_config(settings)
    config.update(
        {
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
            "session.timeout.ms": settings.session_timeout_ms,
            "heartbeat.interval.ms": max(500, settings.session_timeout_ms // 6),
            "isolation.level": "read_committed",
        }
    )
    return config


# Readers need a group id but never join or commit: monitoring leaves these groups out.
READER_GROUP_PREFIX = "agentlog-reader-"


def reader_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A consumer that only reads assigned partitions: no group membership, no commits."""
    config = client_config(settings)
    config.update(
        {
            "group.id": f"{READER_GROUP_PREFIX}{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 100,
        }
    )
    config.update(extra)
    return config


def range_reader_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """A short-lived reader of offset ranges (replay). It never waits for new records, so
    a fetch at the end need not be held open by the broker; an offset past the end is
    reported to it, not silently reset to the beginning; and it does not wait out
    reconnect backoff or Nagle's algorithm when it connects (measured on Tansu: metadata
    in 0.5 ms instead of 13-53 ms about half the time)."""
    return reader_config(
        settings,
        **{
            "fetch.wait.max.ms": 5,
            "auto.offset.reset": "error",
            "socket.nagle.disable": True,
            "reconnect.backoff.ms": 1,
            **extra,
        },
    )


# librdkafka's defaults favour batching: a producer waits linger.ms (5 ms here) to fill
# a batch, and a consumer lets the broker hold an empty fetch for fetch.wait.max.ms
# (500 ms). Kafka answers a held fetch as soon as a record arrives, but Tansu holds it
# for the whole wait, so on Tansu every hop of a tool call (request to worker, result to
# agent) would cost up to that wait. The tool-call path trades more, smaller requests
# for milliseconds.
_LOW_LATENCY_CLIENT = {
    # Small requests leave at once instead of waiting for a full TCP segment.
    "socket.nagle.disable": True,
}


def low_latency_producer_config(settings: Settings) -> dict[str, Any]:
    """The DESIGN.md producer (idempotent, acks=all, murmur2_random) sending each record
    at once, with a delivery report for every record (the tool-call path chains on it)."""
    config = producer_config(settings)
    config.update(_LOW_LATENCY_CLIENT)
    config.update({"linger.ms": 0, "delivery.report.only.error": False})
    return config


def _low_latency_fetching(settings: Settings) -> dict[str, Any]:
    return {
        **_LOW_LATENCY_CLIENT,
        "fetch.wait.max.ms": settings.low_latency_fetch_wait_ms,
        # A failed fetch (a leader moving) is retried soon, not after 500 ms.
        "fetch.error.backoff.ms": 50,
    }


def low_latency_group_consumer_config(settings: Settings, group: str) -> dict[str, Any]:
    """A group member (a tool worker) that commits itself, fetching with a short wait."""
    config = group_consumer_config(settings, group)
    config.update(_low_latency_fetching(settings))
    return config


def low_latency_reader_config(settings: Settings) -> dict[str, Any]:
    """A reader of assigned partitions (an agent awaiting results) with a short wait."""
    return reader_config(settings, **_low_latency_fetching(settings))

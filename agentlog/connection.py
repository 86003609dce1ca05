"""Which Kafka to talk to, and whether it answers."""

from __future__ import annotations

import re
import socket
from collections import deque
from typing import Any

from confluent_kafka import KafkaError, KafkaException
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


class ReportingAdmin(AdminClient):
    """An admin client that keeps librdkafka's last reports about its connections (its
    `error_cb`), so that a request that fails can say why: a broker that answers but
    refuses the connection (TLS, SASL) is not a broker that is down."""

    def __init__(self, config: dict[str, Any]) -> None:
        self._reports: deque[KafkaError] = deque(maxlen=_KEPT_REPORTS)
        reporting: dict[str, Any] = {**config, "error_cb": self._reports.append}
        try:
            super().__init__(reporting)
        except KafkaException as exc:
            raise ConfigurationError(unusable_client_settings(exc.args[0].str())) from None

    def refusal(self) -> str | None:
        """What refused the connections (`refusal_of` the reports), once the reports
        queued in librdkafka are served; None if nothing was refused."""
        self.poll(0)
        return refusal_of(list(self._reports))


def unusable_client_settings(reason: str) -> str:
    """librdkafka's refusal to make a client (`reason`) as one line naming the setting to
    fix: its own words name librdkafka's property and OpenSSL's error, not the variable."""
    reason = reason.removeprefix("Failed to create admin client: ")
    if "ssl.key.location failed" in reason and "key values mismatch" in reason:
        what = "AGENTLOG_SSL_KEY_LOCATION is not the key of AGENTLOG_SSL_CERTIFICATE_LOCATION"
    elif "ssl.key.location failed" in reason:
        what = (
            "AGENTLOG_SSL_KEY_LOCATION cannot be loaded: not a PEM private key, or an "
            "encrypted one and AGENTLOG_SSL_KEY_PASSWORD is wrong or unset"
        )
    elif "ssl.certificate.location failed" in reason:
        what = "AGENTLOG_SSL_CERTIFICATE_LOCATION is not a PEM certificate"
    elif "ssl.ca.location failed" in reason:
        what = "AGENTLOG_SSL_CA_LOCATION holds no PEM CA certificate"
    else:
        what = "the Kafka client settings cannot be used"
    return f"{what} (librdkafka: {reason})"


# Enough for a few reports on each broker of a cluster; older ones are of no use.
_KEPT_REPORTS = 32


def cluster_metadata(
    admin: AdminClient, settings: Settings, timeout: float = 10
) -> ClusterMetadata:
    """Metadata, or BrokerUnavailable when nothing answers within `timeout` seconds: one
    line saying why when librdkafka said it (a TLS handshake or SASL authentication that
    failed, and the settings to check), else that nothing answered."""
    try:
        return admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        refused = admin.refusal() if isinstance(admin, ReportingAdmin) else None
        if refused is not None:
            raise BrokerUnavailable(f"Kafka at {settings.bootstrap_servers}: {refused}") from None
        raise BrokerUnavailable(
            f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:.0f}s "
            f"({exc.args[0].str()}); is the broker running?"
        ) from None


# What librdkafka prefixes a connection's report with, and ends it with.
_REPORT_ORIGIN = re.compile(r"^[a-z_]+://[^ ]*?: ")
_REPORT_STATE = re.compile(r" \(after \d+ms in state \w+\)$")
# OpenSSL's words for a client certificate the broker wanted and did not get or trust
# (TLS alerts 42 bad certificate, 46 certificate unknown, 48 unknown CA, 116 certificate
# required).
_CLIENT_NOT_ACCEPTED = (
    "alert bad certificate",
    "alert certificate unknown",
    "alert unknown ca",
    "alert certificate required",
)


def refusal_of(reports: list[KafkaError]) -> str | None:
    """The first TLS or SASL failure among librdkafka's connection reports, worded with
    the settings to check (librdkafka's own words after it); None if none is. Waiting
    longer never mends these, and "is the broker running?" would send the reader the
    wrong way."""
    for error in reports:
        reason = _REPORT_STATE.sub("", _REPORT_ORIGIN.sub("", error.str()))
        code = error.code()
        if code == KafkaError._AUTHENTICATION:
            return (
                "SASL authentication failed: check AGENTLOG_SASL_MECHANISM, "
                f"AGENTLOG_SASL_USERNAME and AGENTLOG_SASL_PASSWORD (librdkafka: {reason})"
            )
        if code == KafkaError._SSL or (code == KafkaError._TRANSPORT and "SSL" in reason):
            if "certificate verify failed" in reason:
                what = (
                    "the broker's certificate could not be verified; set "
                    "AGENTLOG_SSL_CA_LOCATION to the PEM file of the CA that signed it, and "
                    "reach the broker by a name or address the certificate is for"
                )
            elif any(words in reason for words in _CLIENT_NOT_ACCEPTED):
                what = (
                    "the broker did not accept this client's certificate (none given, or "
                    "not signed by a CA it trusts); set AGENTLOG_SSL_CERTIFICATE_LOCATION "
                    "and AGENTLOG_SSL_KEY_LOCATION to one it trusts and its key"
                )
            else:
                what = "check AGENTLOG_SECURITY_PROTOCOL and the AGENTLOG_SSL_* settings"
            return f"the TLS handshake failed: {what} (librdkafka: {reason})"
    return None


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

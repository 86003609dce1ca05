"""Apache Kafka with TLS listeners for the tests, from the kafka engine's jars: a
certificate authority, a server certificate for 127.0.0.1/localhost and a client
certificate made here with `cryptography`, given to Kafka as PEM files
(`ssl.keystore.type=PEM`, Kafka 2.7+: no keytool, no JKS).

One broker (KRaft combined mode) has two TLS listeners: `SSL` verifies nobody
(`ssl.client.auth=none`, TLS as most managed clusters offer it), `MTLS` demands a client
certificate its CA signed (`ssl.client.auth=required`), `SASL_SSL` wants a SASL/PLAIN
user over TLS. A PLAINTEXT listener carries the broker's own traffic only; clients are
never told of it.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from agentlog.devbroker import kafka as kafka_engine
from agentlog.devbroker._process import free_port
from agentlog.settings import KAFKA_LOGGER, Settings
from helpers import wait_for

# The password of the client's encrypted key, and the SASL user of the SASL_SSL listener:
# neither password may appear in anything printed.
CLIENT_KEY_PASSWORD = "pw-3c1b-never-printed"
SASL_USER = "agent"
SASL_PASSWORD = "sasl-9f2e-never-printed"
START_WITHIN_S = 180.0
_FORMAT_WITHIN_S = 120.0


@dataclass(frozen=True)
class _Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _issue(
    name: str,
    issuer: _Issued | None,
    *,
    authority: bool = False,
    server: bool = False,
) -> _Issued:
    """A P-256 key and its certificate for `name`, signed by `issuer` (self-signed when
    None), valid from an hour ago for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=authority, path_length=None), critical=True)
    )
    if authority:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    elif server:
        # What librdkafka checks by default (ssl.endpoint.identification.algorithm=https).
        names = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    signer = issuer.key if issuer else key
    return _Issued(key, builder.sign(signer, hashes.SHA256()))


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _private(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class Certificates:
    """The PEM files of the test: the CA that signed the broker's and the client's
    certificates, the client's certificate and its key (encrypted with
    CLIENT_KEY_PASSWORD), and another CA that signed neither."""

    ca: Path
    client_certificate: Path
    client_key: Path
    other_ca: Path
    server_keystore: Path  # the broker's key and certificate chain, for Kafka alone


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    authority = _issue("agentlog test CA", None, authority=True)
    server = _issue("localhost", authority, server=True)
    client = _issue("agentlog-test-client", authority)
    other = _issue("some other CA", None, authority=True)
    return Certificates(
        ca=_private(folder / "ca.pem", _pem(authority.certificate)),
        client_certificate=_private(folder / "client.pem", _pem(client.certificate)),
        client_key=_private(folder / "client.key", _key_pem(client.key, CLIENT_KEY_PASSWORD)),
        other_ca=_private(folder / "other-ca.pem", _pem(other.certificate)),
        server_keystore=_private(
            folder / "server.pem",
            _key_pem(server.key) + _pem(server.certificate) + _pem(authority.certificate),
        ),
    )


@dataclass(frozen=True)
class TlsBroker:
    """Where the broker listens: `ssl` (server authenticated) and `mtls` (client
    certificates required), each HOST:PORT; and the certificates it trusts and serves."""

    ssl: str
    mtls: str
    sasl_ssl: str
    plaintext: str  # the broker's own listener, not TLS
    certificates: Certificates
    log_file: Path


def _server_properties(folder: Path, certificates: Certificates) -> list[str]:
    """Writes the broker's configuration; returns the ssl, mtls, sasl_ssl and plaintext
    addresses."""
    plain, controller, ssl, mtls, sasl = (free_port() for _ in range(5))
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "listeners": (
            f"PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},"
            f"SSL://127.0.0.1:{ssl},MTLS://127.0.0.1:{mtls},SASL_SSL://127.0.0.1:{sasl}"
        ),
        "advertised.listeners": (
            f"PLAINTEXT://127.0.0.1:{plain},SSL://127.0.0.1:{ssl},MTLS://127.0.0.1:{mtls},"
            f"SASL_SSL://127.0.0.1:{sasl}"
        ),
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,MTLS:SSL,SASL_SSL:SASL_SSL"
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(certificates.server_keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(certificates.ca),
        "ssl.client.auth": "none",
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_ssl.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{SASL_USER}="{SASL_PASSWORD}";'
        ),
        "log.dirs": str(folder / "data"),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
    }
    (folder / "server.properties").write_text(
        "".join(f"{key}={value}\n" for key, value in properties.items())
    )
    return [f"127.0.0.1:{port}" for port in (ssl, mtls, sasl, plain)]


def _java_options() -> list[str]:
    # A short-lived test broker: the quick JIT tier and a small heap start it sooner.
    return ["-Xmx384m", "-Xms384m", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true"]


def _lists_a_broker(config: dict[str, object]) -> bool:
    try:
        # Refused connections while it starts are logged, not printed on stderr.
        return bool(AdminClient({**config, "logger": KAFKA_LOGGER}).list_topics(timeout=2).brokers)
    except KafkaException:
        return False


def trusting_client(broker: TlsBroker, bootstrap: str) -> dict[str, object]:
    """librdkafka settings of a client that trusts the broker and has its certificate."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SSL",
        "ssl.ca.location": str(broker.certificates.ca),
        "ssl.certificate.location": str(broker.certificates.client_certificate),
        "ssl.key.location": str(broker.certificates.client_key),
        "ssl.key.password": CLIENT_KEY_PASSWORD,
    }


@contextmanager
def running_tls_broker(folder: Path, jar_settings: Settings) -> Iterator[TlsBroker]:
    """The broker, started under `folder` (its jars and java as `jar_settings` find them)
    and answering on its SSL and MTLS listeners; killed at the end (its log is of this
    run only)."""
    certificates = make_certificates(folder / "certificates")
    ssl, mtls, sasl_ssl, plaintext = _server_properties(folder, certificates)
    java, classpath = kafka_engine.java_and_classpath(jar_settings)
    log_file = folder / "broker.log"
    config = str(folder / "server.properties")
    # A cluster id as Kafka makes them, without "-" (the tool would take a leading one for
    # an option).
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    with log_file.open("ab") as log:
        formatted = subprocess.run(
            [java, *_java_options(), "-cp", classpath, "kafka.tools.StorageTool", "format"]
            + ["-t", cluster_id.replace("-", "A"), "-c", config],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=_FORMAT_WITHIN_S,
        )
        assert formatted.returncode == 0, f"formatting the TLS broker's log failed; see {log_file}"
        log4j = resources.files("agentlog.devbroker").joinpath("log4j2.properties")
        with resources.as_file(log4j) as log4j_path:
            process = subprocess.Popen(
                [java, *_java_options(), f"-Dlog4j2.configurationFile={log4j_path}"]
                + [f"-Dkafka.logs.dir={folder}", "-cp", classpath, "kafka.Kafka", config],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
    broker = TlsBroker(ssl, mtls, sasl_ssl, plaintext, certificates, log_file)
    try:

        def answers_over_tls() -> bool:
            assert process.poll() is None, f"the TLS broker exited; see {log_file}"
            return all(
                _lists_a_broker(trusting_client(broker, bootstrap)) for bootstrap in (ssl, mtls)
            )

        wait_for(answers_over_tls, START_WITHIN_S, f"Kafka to answer over TLS (see {log_file})")
        yield broker
    finally:
        process.kill()
        process.wait(timeout=30)


def environment(settings: Settings) -> dict[str, str]:
    """The AGENTLOG_* variables that give a CLI run these settings' broker and TLS."""
    values = {
        "AGENTLOG_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
        "AGENTLOG_TOPIC_PREFIX": settings.topic_prefix,
        "AGENTLOG_SECURITY_PROTOCOL": settings.security_protocol,
        "AGENTLOG_SSL_CA_LOCATION": settings.ssl_ca_location,
        "AGENTLOG_SSL_CERTIFICATE_LOCATION": settings.ssl_certificate_location,
        "AGENTLOG_SSL_KEY_LOCATION": settings.ssl_key_location,
        "AGENTLOG_SSL_KEY_PASSWORD": _revealed(settings.ssl_key_password),
        "AGENTLOG_SASL_MECHANISM": settings.sasl_mechanism,
        "AGENTLOG_SASL_USERNAME": settings.sasl_username,
        "AGENTLOG_SASL_PASSWORD": _revealed(settings.sasl_password),
    }
    return {name: str(value) for name, value in values.items() if value is not None}


def _revealed(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None

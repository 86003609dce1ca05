"""Every setting is validated wherever it comes from (environment, flag, code), a bad one
is one line naming it; TLS files beside SASL reach the Kafka clients, their key's password
never shown."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers.cli import agentlog

from agentlog.errors import ConfigurationError
from agentlog.kafka_config import client_config, producer_config
from agentlog.settings import Settings


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"partitions": 0},
            "partitions=0 is not valid: Input should be greater than or equal to 1",
        ),
        ({"state_dir": "relative/state"}, "state_dir='relative/state' is not valid: "),
        ({"compression": "brotli"}, "compression='brotli' is not valid: "),
        ({"security_protocol": "tls"}, "security_protocol='tls' is not valid: "),
        ({"ssl_ca_location": "/no/such/ca.pem"}, "'/no/such/ca.pem' is not a file"),
        ({"sasl_password": ""}, None),
    ],
)
def test_overrides_are_validated(override: dict[str, object], message: str | None) -> None:
    if message is None:
        Settings().with_overrides(**override)
        return
    with pytest.raises(ConfigurationError) as refused:
        Settings().with_overrides(**override)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_no_such_setting_is_refused_not_ignored() -> None:
    with pytest.raises(ConfigurationError, match="no such setting: partitons"):
        Settings().with_overrides(partitons=3)


def test_state_dir_from_home_is_expanded_and_other_folders_made_absolute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings().with_overrides(state_dir="~/agentlog-state", archive_dir="archive")
    assert settings.state_dir == Path.home() / "agentlog-state"
    assert settings.archive_dir == tmp_path / "archive"


def test_a_relative_state_dir_flag_is_one_line(tmp_path: Path) -> None:
    run = agentlog("--state-dir", "relative/state", "conversations", "list", state_dir=tmp_path)
    assert run.code == 1
    assert run.err == (
        "error: state_dir='relative/state' is not valid: 'relative/state' is relative: "
        "give an absolute path or ~/...\n"
    )


def test_a_missing_tls_file_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    run = agentlog("tail", state_dir=tmp_path, env={"AGENTLOG_SSL_CA_LOCATION": str(missing)})
    assert run.code == 1
    assert run.err == (
        f"error: AGENTLOG_SSL_CA_LOCATION='{missing}' is not valid: '{missing}' is not a file\n"
    )


def test_a_secret_refused_is_not_shown(tmp_path: Path) -> None:
    run = agentlog(
        "tail",
        state_dir=tmp_path,
        env={"AGENTLOG_SSL_KEY_PASSWORD": "hunter2", "AGENTLOG_SSL_KEY_LOCATION": "/no/key"},
    )
    assert run.code == 1 and "hunter2" not in run.err and run.err.count("\n") == 1


def _tls_files(folder: Path, key_password: bytes | None) -> tuple[Path, Path, Path]:
    """A CA and a client certificate it signed, as PEM files (the key encrypted or not)."""
    now = datetime.datetime.now(datetime.UTC)

    def certificate(
        subject: str,
        key: ec.EllipticCurvePrivateKey,
        issuer: str,
        signer: ec.EllipticCurvePrivateKey,
    ) -> x509.Certificate:
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=subject == issuer, path_length=None), True)
            .sign(signer, hashes.SHA256())
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    client_key = ec.generate_private_key(ec.SECP256R1())
    ca = folder / "ca.pem"
    ca.write_bytes(certificate("ca", ca_key, "ca", ca_key).public_bytes(serialization.Encoding.PEM))
    cert = folder / "client.pem"
    cert.write_bytes(
        certificate("client", client_key, "ca", ca_key).public_bytes(serialization.Encoding.PEM)
    )
    key = folder / "client.key"
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(key_password)
        if key_password
        else serialization.NoEncryption()
    )
    key.write_bytes(
        client_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )
    )
    return ca, cert, key


def test_tls_settings_make_the_client_config_librdkafka_loads(tmp_path: Path) -> None:
    ca, cert, key = _tls_files(tmp_path, b"k3y-pass")
    settings = Settings(
        bootstrap_servers="127.0.0.1:9093",
        security_protocol="SSL",
        ssl_ca_location=ca,
        ssl_certificate_location=cert,
        ssl_key_location=key,
        ssl_key_password="k3y-pass",  # type: ignore[arg-type]
    )
    config = client_config(settings)
    assert {k: v for k, v in config.items() if k.startswith(("ssl.", "security."))} == {
        "security.protocol": "SSL",
        "ssl.ca.location": str(ca),
        "ssl.certificate.location": str(cert),
        "ssl.key.location": str(key),
        "ssl.key.password": "k3y-pass",
    }
    assert "k3y-pass" not in repr(settings) and "k3y-pass" not in str(settings)
    # librdkafka reads the CA, the certificate and decrypts the key when the client is
    # made: with the right password it is made; with a wrong one it is refused.
    Producer(producer_config(settings)).flush(0)
    wrong = settings.with_overrides(ssl_key_password="not-it")
    with pytest.raises(KafkaException, match=r"(?i)key|ssl"):
        Producer(producer_config(wrong))


def test_a_client_certificate_needs_its_key(tmp_path: Path) -> None:
    _, cert, _ = _tls_files(tmp_path, None)
    with pytest.raises(ConfigurationError, match="go together"):
        Settings().with_overrides(ssl_certificate_location=cert)

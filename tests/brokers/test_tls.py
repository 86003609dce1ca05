"""agentlog against a real TLS broker (Apache Kafka from the kafka engine's jars, its
certificates made by the test, see helpers/tls_broker.py): it records and reads back over TLS,
with a client certificate where the broker demands one and with SASL over TLS; a client
that does not trust the broker, or that the broker does not accept, gets one line saying
which settings to check, a non-zero exit, and no password in anything printed; a
recorder that does not trust the broker loses nothing (its spool keeps the events).

One broker for the module: it starts in about 10 s on a loaded machine."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import absent, engine_settings
from helpers.cli import Run, agentlog
from helpers.tls_broker import (
    CLIENT_KEY_PASSWORD,
    SASL_PASSWORD,
    SASL_USER,
    TlsBroker,
    environment,
    running_tls_broker,
)

from agentlog.devbroker import kafka as kafka_engine
from agentlog.errors import DevBrokerError
from agentlog.producers import Recorder
from agentlog.settings import Settings
from agentlog.topics import create_topics

pytestmark = pytest.mark.starts_dev_broker

PASSWORDS = (CLIENT_KEY_PASSWORD, SASL_PASSWORD)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    folder = tmp_path_factory.mktemp("tls-broker")
    jars = engine_settings("kafka", folder)
    try:
        kafka_engine.ensure_runnable(jars)
    except DevBrokerError as exc:
        absent("kafka", f"Apache Kafka cannot run here: {exc}")
    with running_tls_broker(folder, jars) as broker:
        yield broker


def tls_settings(bootstrap: str, tmp_path: Path, **tls: Any) -> Settings:
    """Settings on topics of this test alone at `bootstrap`, over TLS (`tls`: the
    ssl_*/sasl_* settings)."""
    return Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=2,
        state_dir=tmp_path,
        spool=False,
        delivery_timeout_ms=20_000,
        **{"security_protocol": "SSL", **tls},
    )


def with_client_certificate(broker: TlsBroker) -> dict[str, Any]:
    """The client's certificate and its encrypted key, with the key's password."""
    return {
        "ssl_certificate_location": broker.certificates.client_certificate,
        "ssl_key_location": broker.certificates.client_key,
        "ssl_key_password": CLIENT_KEY_PASSWORD,
    }


def record_a_conversation(settings: Settings) -> str:
    conversation = f"tls-{uuid.uuid4().hex[:8]}"
    with Recorder(settings, service="tls-test") as recorder:
        recorder.start_conversation(conversation, channel="web_chat", user_id="u-1")
        recorder.user_message(conversation, "is this encrypted?")
        recorder.agent_message(conversation, "support", "yes, over TLS")
        recorder.end_conversation(conversation, "resolved")
    return conversation


def cli(settings: Settings, *args: str) -> Run:
    """`agentlog ARGS` configured by AGENTLOG_* variables only, as a user would run it."""
    return agentlog(*args, state_dir=settings.state_dir, env=environment(settings))


def assert_no_password_shown(*runs: Run) -> None:
    for run in runs:
        for password in PASSWORDS:
            assert password not in run.out and password not in run.err


def assert_one_line_error(run: Run, *names: str) -> None:
    """A non-zero exit and one line on stderr that names the settings to check, not a
    broker that is down."""
    assert run.code != 0, run.out
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.err
    assert "is the broker running" not in lines[0], lines[0]
    for name in names:
        assert name in lines[0], lines[0]


def test_records_over_tls_and_projects_it_with_the_cli(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(tls_broker.ssl, tmp_path, ssl_ca_location=tls_broker.certificates.ca)
    create_topics(settings)
    conversation = record_a_conversation(settings)

    projected = cli(settings, "project", "run", "--once")
    listed = cli(settings, "conversations", "list", "--outcome", "resolved")
    tailed = cli(settings, "tail", "--conversation", conversation)

    assert projected.code == 0, projected.err
    assert listed.code == 0 and conversation in listed.out, listed.err
    assert tailed.code == 0, tailed.err
    assert tailed.out.count(conversation) == 4 and "is this encrypted?" in tailed.out


def test_mutual_tls_with_the_client_certificate_records_and_reads_back(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(
        tls_broker.mtls,
        tmp_path,
        ssl_ca_location=tls_broker.certificates.ca,
        **with_client_certificate(tls_broker),
    )
    create_topics(settings)
    conversation = record_a_conversation(settings)

    tailed = cli(settings, "tail", "--conversation", conversation)

    assert tailed.code == 0, tailed.err
    assert tailed.out.count(conversation) == 4 and "yes, over TLS" in tailed.out
    assert_no_password_shown(tailed)


def test_sasl_over_tls_records_and_reads_back(tls_broker: TlsBroker, tmp_path: Path) -> None:
    settings = tls_settings(
        tls_broker.sasl_ssl,
        tmp_path,
        security_protocol="SASL_SSL",
        ssl_ca_location=tls_broker.certificates.ca,
        sasl_mechanism="PLAIN",
        sasl_username=SASL_USER,
        sasl_password=SASL_PASSWORD,
    )
    create_topics(settings)
    conversation = record_a_conversation(settings)

    tailed = cli(settings, "tail", "--conversation", conversation)

    assert tailed.code == 0, tailed.err
    assert tailed.out.count(conversation) == 4
    assert_no_password_shown(tailed)


def test_a_client_that_does_not_trust_the_broker_gets_one_line_naming_the_ca_setting(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(
        tls_broker.ssl,
        tmp_path,
        ssl_ca_location=tls_broker.certificates.other_ca,
        **with_client_certificate(tls_broker),
    )

    tailed = cli(settings, "tail")

    assert_one_line_error(
        tailed, tls_broker.ssl, "TLS handshake failed", "AGENTLOG_SSL_CA_LOCATION"
    )
    assert "certificate verify failed" in tailed.err
    assert_no_password_shown(tailed)


def test_mutual_tls_without_a_client_certificate_gets_one_line_naming_the_certificate(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(tls_broker.mtls, tmp_path, ssl_ca_location=tls_broker.certificates.ca)

    created = cli(settings, "topics", "create")

    assert_one_line_error(
        created, tls_broker.mtls, "TLS handshake failed", "AGENTLOG_SSL_CERTIFICATE_LOCATION"
    )


def test_a_wrong_sasl_password_gets_one_line_and_the_password_is_not_shown(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(
        tls_broker.sasl_ssl,
        tmp_path,
        security_protocol="SASL_SSL",
        ssl_ca_location=tls_broker.certificates.ca,
        sasl_mechanism="PLAIN",
        sasl_username=SASL_USER,
        sasl_password=CLIENT_KEY_PASSWORD,  # a password shown nowhere, and the wrong one
    )

    tailed = cli(settings, "tail")

    assert_one_line_error(tailed, "SASL authentication failed", "AGENTLOG_SASL_PASSWORD")
    assert_no_password_shown(tailed)


def test_a_wrong_key_password_gets_one_line_naming_it_and_not_showing_it(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(
        tls_broker.mtls,
        tmp_path,
        ssl_ca_location=tls_broker.certificates.ca,
        **{**with_client_certificate(tls_broker), "ssl_key_password": SASL_PASSWORD},
    )

    described = cli(settings, "topics", "describe")

    assert_one_line_error(described, "AGENTLOG_SSL_KEY_LOCATION", "AGENTLOG_SSL_KEY_PASSWORD")
    assert_no_password_shown(described)


def test_tls_to_a_listener_that_is_not_tls_gets_one_line_naming_the_protocol(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    settings = tls_settings(
        tls_broker.plaintext, tmp_path, ssl_ca_location=tls_broker.certificates.ca
    )

    tailed = cli(settings, "tail")

    assert_one_line_error(tailed, "TLS handshake failed", "AGENTLOG_SECURITY_PROTOCOL")


def test_a_recorder_that_does_not_trust_the_broker_keeps_its_events_until_one_that_does(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    trusting = tls_settings(tls_broker.ssl, tmp_path, ssl_ca_location=tls_broker.certificates.ca)
    create_topics(trusting)
    distrusting = trusting.with_overrides(
        ssl_ca_location=tls_broker.certificates.other_ca, spool=True
    )
    conversation = f"tls-{uuid.uuid4().hex[:8]}"

    with Recorder(distrusting, service="tls-test") as recorder:  # recording never raises
        recorder.user_message(conversation, "kept while the handshake fails")
    with Recorder(trusting.with_overrides(spool=True), service="tls-test"):
        pass  # ships what the spool under the same state_dir holds
    tailed = cli(trusting, "tail", "--conversation", conversation)

    assert tailed.code == 0, tailed.err
    assert tailed.out.count(conversation) == 1 and "kept while the handshake fails" in tailed.out

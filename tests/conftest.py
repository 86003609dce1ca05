"""Fixtures: a real broker over TCP (embedded Tansu always; Apache Kafka through
testcontainers where a Docker engine answers), fresh topics per test."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlog import devbroker
from agentlog.settings import Settings
from agentlog.topics import create_topics


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="session")
def tansu_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = Settings(state_dir=tmp_path_factory.mktemp("tansu-state"))
    broker = devbroker.start(state)
    try:
        yield broker.bootstrap
    finally:
        devbroker.stop(state)


@pytest.fixture(scope="session")
def apache_kafka_bootstrap() -> Iterator[str]:
    if not _docker_answers():
        pytest.skip("Apache Kafka via testcontainers needs a Docker engine; none answers here")
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.7.1").with_kraft() as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session", params=["tansu", "apache-kafka"])
def bootstrap(request: pytest.FixtureRequest) -> str:
    """Every broker-backed test runs on the embedded broker and on real Apache Kafka."""
    name = "tansu_bootstrap" if request.param == "tansu" else "apache_kafka_bootstrap"
    return request.getfixturevalue(name)


@pytest.fixture
def settings(bootstrap: str, tmp_path: Path) -> Settings:
    """Settings on topics of this test alone (3 partitions), created on the broker."""
    configured = Settings(
        bootstrap_servers=bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=3,
        state_dir=tmp_path / "state",
        delivery_timeout_ms=10_000,
    )
    create_topics(configured, bootstrap)
    return configured

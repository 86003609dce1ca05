"""Fixtures: a real broker over TCP (embedded Tansu always; Apache Kafka through
testcontainers where a Docker engine answers), fresh topics per test."""

from __future__ import annotations

import os
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


POSTGRES_URL = os.environ.get("AGENTLOG_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_answers() -> str | None:
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A schema of this test alone in the test database."""
    import psycopg

    problem = _postgres_answers()
    if problem is not None:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} does not answer ({problem})")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["duckdb", "postgresql"])
def sink_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every sink test runs on DuckDB and on PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb:{tmp_path / 'state.duckdb'}"
    return request.getfixturevalue("postgres_url")

"""Fixtures: a real broker over TCP on every engine present (Tansu always; Apache Kafka
from its official jars where Java is; Kafka through testcontainers where a Docker engine
answers), fresh topics per test, and a private PostgreSQL cluster.

`AGENTLOG_REQUIRE=kafka,postgres` (set by `.ci/run`) turns the skip of an absent engine or
PostgreSQL into a failure, so CI cannot pass with them quietly skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import Capabilities, capabilities_of
from helpers.postgres_server import private_cluster, server_binaries

from agentlog import devbroker
from agentlog.devbroker import kafka as kafka_engine
from agentlog.errors import DevBrokerError
from agentlog.settings import Settings
from agentlog.topics import create_topics

REQUIRED = {
    name.strip() for name in os.environ.get("AGENTLOG_REQUIRE", "").split(",") if name.strip()
}
ENGINES = ["tansu", "kafka", "testcontainers"]


def absent(what: str, reason: str) -> None:
    """Skip for want of `what`, unless this run requires it."""
    if what in REQUIRED:
        pytest.fail(f"{what} is required (AGENTLOG_REQUIRE) but unavailable: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Broker:
    engine: str
    bootstrap: str

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_of(self.engine)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def engine_settings(engine: str, state_dir: Path) -> Settings:
    """Settings for a dev broker of `engine` under `state_dir`; Kafka's jars are shared
    with the user's own cache, so they are resolved once, not once per run."""
    shared_jars = kafka_engine.jars_dir(Settings())
    return Settings(state_dir=state_dir, dev_engine=engine, kafka_jars_dir=shared_jars)


def start_dev_broker(engine: str, state_dir: Path) -> tuple[Settings, devbroker.DevBrokerRecord]:
    """A dev broker of this engine, or a skip (a failure if required) saying why not."""
    state = engine_settings(engine, state_dir)
    try:
        return state, devbroker.start(state)
    except DevBrokerError as exc:
        absent(engine, f"the {engine} engine cannot run here: {exc}")
        raise  # unreachable: absent() skips or fails


@pytest.fixture(scope="session")
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Broker]:
    """One broker per engine for the whole run."""
    engine = request.param
    if engine == "testcontainers":
        if not _docker_answers():
            absent(engine, "Kafka via testcontainers needs a Docker engine; none answers here")
        from testcontainers.kafka import KafkaContainer

        # Configured as the dev engine configures Kafka (devbroker/kafka.py), so that it
        # has the capabilities of Kafka in helpers/engines.py.
        container = (
            KafkaContainer("confluentinc/cp-kafka:7.7.1")
            .with_kraft()
            .with_env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false")
            .with_env("KAFKA_LOG_RETENTION_CHECK_INTERVAL_MS", "2000")
            .with_env("KAFKA_LOG_SEGMENT_DELETE_DELAY_MS", "1000")
        )
        with container:
            yield Broker(engine, container.get_bootstrap_server())
        return
    state, record = start_dev_broker(engine, tmp_path_factory.mktemp(f"{engine}-state"))
    try:
        yield Broker(engine, record.bootstrap)
    finally:
        devbroker.stop(state)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "broker" in metafunc.fixturenames:
        metafunc.parametrize("broker", ENGINES, indirect=True, scope="session")


@pytest.fixture
def bootstrap(broker: Broker) -> str:
    return broker.bootstrap


@pytest.fixture
def engine(broker: Broker) -> str:
    """The engine's name, to name it in a message; branch on `capabilities` instead."""
    return broker.engine


@pytest.fixture
def capabilities(broker: Broker) -> Capabilities:
    """What this test's broker can do (helpers/engines.py): tests ask this, not the name."""
    return broker.capabilities


@pytest.fixture
def settings(broker: Broker, tmp_path: Path) -> Settings:
    """Settings on topics of this test alone (3 partitions), created on the broker."""
    configured = Settings(
        bootstrap_servers=broker.bootstrap,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        partitions=3,
        state_dir=tmp_path / "state",
        delivery_timeout_ms=10_000,
        # The tests of the recorder without a spool (the default has one) say so here;
        # those of the spool turn it on with spool_dir.
        spool=False,
    )
    create_topics(configured)
    return configured


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """AGENTLOG_TEST_POSTGRES_URL, else a private cluster for this run, else a skip."""
    given = os.environ.get("AGENTLOG_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if server_binaries() is None:
        absent(
            "postgres",
            "PostgreSQL server binaries are not installed (Debian: apt-get install postgresql)"
            " and AGENTLOG_TEST_POSTGRES_URL is not set",
        )
    # Under /tmp, not pytest's private temp folder: the server runs as `postgres` when
    # the tests run as root, and must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="agentlog-pg-"))
    root.chmod(0o755)
    try:
        with private_cluster(root) as url:
            yield url
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        absent("postgres", f"a private PostgreSQL cluster could not start: {exc}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A schema of this test alone in the test database."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres_server else "?"
    try:
        yield f"{postgres_server}{separator}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["duckdb", "postgresql"])
def sink_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every sink test runs on DuckDB and on PostgreSQL."""
    if request.param == "duckdb":
        return f"duckdb:{tmp_path / 'state.duckdb'}"
    return request.getfixturevalue("postgres_url")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark broker tests `kafka` and PostgreSQL tests `postgres`, so that
    `pytest -m "not kafka and not postgres"` is the fast loop."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        params = getattr(getattr(item, "callspec", None), "params", {})
        starts_a_broker = {"broker", "dev_broker_engine", "doomed_broker"} & set(names)
        if starts_a_broker or item.get_closest_marker("starts_dev_broker"):
            item.add_marker(pytest.mark.kafka)
        if "postgres_url" in names or "postgresql" in params.values():
            item.add_marker(pytest.mark.postgres)


@dataclass(frozen=True)
class DevEngine:
    """An engine a test starts dev brokers of itself, and the environment that makes the
    `agentlog` command use the shared jar cache."""

    name: str
    env: dict[str, str]

    @property
    def capabilities(self) -> Capabilities:
        return capabilities_of(self.name)

    def settings(self, state_dir: Path) -> Settings:
        return engine_settings(self.name, state_dir)


@pytest.fixture(params=["tansu", "kafka"])
def dev_broker_engine(request: pytest.FixtureRequest) -> DevEngine:
    engine = request.param
    env = {"AGENTLOG_DEV_ENGINE": engine}
    if engine == "kafka":
        try:
            kafka_engine.ensure_runnable(engine_settings(engine, Path(tempfile.gettempdir())))
        except DevBrokerError as exc:
            absent(engine, f"the kafka engine cannot run here: {exc}")
        env["AGENTLOG_KAFKA_JARS_DIR"] = str(kafka_engine.jars_dir(Settings()))
    return DevEngine(engine, env)

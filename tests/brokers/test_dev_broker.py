"""`agentlog dev up|status|down` manage the local broker for every later command, on
both engines; the kafka engine keeps its log on disk until `down --wipe`."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from helpers.cli import agentlog
from helpers.kafka_python_reader import read_all

from agentlog.serde import decode_event


def test_dev_up_status_down_and_commands_find_it(dev_broker_engine, tmp_path) -> None:
    env = dev_broker_engine.env
    up = agentlog("dev", "up", state_dir=tmp_path, env=env)
    assert up.code == 0, up.err
    bootstrap = up.out.strip().splitlines()[-1]
    assert bootstrap.startswith("127.0.0.1:")
    if not dev_broker_engine.capabilities.keeps_log_across_restart:
        assert "memory only" in up.out
    else:
        assert "Apache Kafka 4." in up.out and f"data in {tmp_path}" in up.out
    try:
        again = agentlog("dev", "up", state_dir=tmp_path, env=env)
        assert "already running" in again.out and again.out.strip().endswith(bootstrap)
        status = agentlog("dev", "status", state_dir=tmp_path, env=env)
        assert status.code == 0 and bootstrap in status.out
        assert dev_broker_engine.name in status.out
        # No --bootstrap and no env: the command uses the running dev broker.
        created = agentlog("topics", "create", "--partitions", "2", state_dir=tmp_path)
        assert created.code == 0, created.err
        assert "agentlog.events: created" in created.out
        described = agentlog("topics", "describe", state_dir=tmp_path)
        assert "agentlog.events: 2 partitions" in described.out
        assert "retention.ms=-1" in described.out
        recreated = agentlog("topics", "create", state_dir=tmp_path)
        assert recreated.out.count(": exists") == 3
    finally:
        down = agentlog("dev", "down", state_dir=tmp_path, env=env)
    assert down.code == 0 and "stopped" in down.out
    after = agentlog("dev", "status", state_dir=tmp_path)
    assert after.code == 1 and "agentlog dev up" in after.err


def test_dev_up_on_a_taken_port_fails_clearly(dev_broker_engine, tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = agentlog(
            "dev",
            "up",
            "--port",
            str(port),
            state_dir=tmp_path,
            env=dev_broker_engine.env,
            timeout=90,
        )
    assert run.code == 1
    assert f"error: the {dev_broker_engine.name} dev broker" in run.err
    assert len(run.err.strip().splitlines()) == 1


def _demo_events(bootstrap: str) -> list:
    return [decode_event(r.value) for r in read_all(bootstrap, "agentlog.events")]


# The kafka engine alone: Tansu is memory only by design, nothing survives `dev down`.
@pytest.mark.parametrize("dev_broker_engine", ["kafka"], indirect=True)
def test_kafka_engine_log_survives_down_and_up_until_wiped(dev_broker_engine, tmp_path) -> None:
    env = dev_broker_engine.env
    up = agentlog("dev", "up", state_dir=tmp_path, env=env)
    assert up.code == 0, up.err
    bootstrap = up.out.strip().splitlines()[-1]
    demo = agentlog("demo", "-n", "10", "--seed", "3", state_dir=tmp_path, timeout=180)
    assert demo.code == 0, demo.err
    before = _demo_events(bootstrap)
    assert len(before) > 0
    agentlog("dev", "down", state_dir=tmp_path, env=env)
    up_again = agentlog("dev", "up", state_dir=tmp_path, env=env)
    assert up_again.code == 0, up_again.err
    bootstrap = up_again.out.strip().splitlines()[-1]
    try:
        assert _demo_events(bootstrap) == before
    finally:
        wiped = agentlog("dev", "down", "--wipe", state_dir=tmp_path, env=env)
    assert "deleted" in wiped.out
    assert not (Path(tmp_path) / "kafka" / "data").exists()


def test_kafka_engine_without_java_says_what_to_install(tmp_path) -> None:
    run = agentlog(
        "dev",
        "up",
        "--engine",
        "kafka",
        state_dir=tmp_path,
        env={"PATH": "/nonexistent", "JAVA_HOME": ""},
    )
    assert run.code == 1
    assert "error: Apache Kafka needs Java 17" in run.err
    assert "JAVA_HOME" in run.err


def test_kafka_cluster_ids_never_start_with_a_dash() -> None:
    from agentlog.devbroker.kafka import _cluster_id

    ids = [_cluster_id() for _ in range(5000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(i) == 22 for i in ids)


# The path under test goes from Tansu to Kafka: the kafka engine's fixture (its jars).
@pytest.mark.parametrize("dev_broker_engine", ["kafka"], indirect=True)
def test_the_readme_path_from_tansu_to_kafka_keeps_the_demo_working(
    dev_broker_engine, tmp_path
) -> None:
    """Quick start on Tansu, then docs/dev-brokers.md's Kafka steps: the default projection file
    built from the Tansu log must not block the demo on Kafka (nor after a wipe)."""
    env = dev_broker_engine.env
    tansu_env = {**env, "AGENTLOG_DEV_ENGINE": "tansu"}
    try:
        assert agentlog("demo", "-n", "30", state_dir=tmp_path, env=tansu_env).code == 0
        agentlog("dev", "down", state_dir=tmp_path, env=env)
        up = agentlog("dev", "up", "--engine", "kafka", state_dir=tmp_path, env=env)
        assert up.code == 0, up.err
        # What was built from the Tansu log is moved aside, and says where.
        aside = tmp_path / "previous-logs"
        assert "note: moved what was built from the previous log (tansu-" in up.out
        assert str(aside) in up.out and not (tmp_path / "projections.duckdb").exists()
        on_kafka = agentlog("demo", "-n", "10", state_dir=tmp_path, env=env, timeout=180)
        assert on_kafka.code == 0, on_kafka.err
        # Every command answers for the Kafka log alone (the new-user steps).
        out = tmp_path / "k.jsonl"
        exported = agentlog("export", "training", "--out", str(out), state_dir=tmp_path, env=env)
        assert exported.code == 0, exported.err
        counted = agentlog(
            "sql", "SELECT count(DISTINCT conversation_id) AS n FROM events "
            "WHERE conversation_id LIKE 'conv-%'", "--format", "csv",
            state_dir=tmp_path, env=env,
        )  # fmt: skip
        assert counted.code == 0, counted.err
        assert counted.out.strip().splitlines()[-1] == "10"  # not the Tansu log's 30 too
        archived = agentlog("archive", "status", state_dir=tmp_path, env=env)
        assert archived.code == 0, archived.err
        progress = re.findall(r"archived up to ([\d,]+) of ([\d,]+)", archived.out)
        assert progress, archived.out  # no progress line would check nothing below
        for done, end in progress:
            assert int(done.replace(",", "")) <= int(end.replace(",", "")), archived.out
        agentlog("dev", "down", "--wipe", state_dir=tmp_path, env=env)
        assert agentlog("dev", "up", "--engine", "kafka", state_dir=tmp_path, env=env).code == 0
        wiped = agentlog("demo", "-n", "10", state_dir=tmp_path, env=env, timeout=180)
        assert wiped.code == 0, wiped.err
    finally:
        agentlog("dev", "down", "--wipe", state_dir=tmp_path, env=env)


def _closed_by_the_server_first(port_holder: socket.socket) -> None:
    """A connection to `port_holder` that the listening side closes first, as a stopped
    broker does: it leaves a TIME_WAIT socket on the listener's port."""
    client = socket.create_connection(port_holder.getsockname())
    accepted, _ = port_holder.accept()
    accepted.close()
    client.recv(1)  # the server's FIN has arrived
    client.close()


def test_a_port_whose_connections_linger_in_time_wait_is_free() -> None:
    from agentlog.devbroker._process import port_is_free

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as brokers listen
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    _closed_by_the_server_first(listener)
    assert not port_is_free(port)  # still listened on
    listener.close()
    assert port_is_free(port)  # only TIME_WAIT is left: a broker can bind it


def test_dev_up_after_down_comes_back_on_its_port(dev_broker_engine, tmp_path) -> None:
    """Clients connected while the broker stops leave TIME_WAIT sockets on its port; the
    broker must come back on that port all the same, where running clients look for it."""
    from kafka import KafkaConsumer

    env = dev_broker_engine.env
    up = agentlog("dev", "up", state_dir=tmp_path, env=env)
    assert up.code == 0, up.err
    first = up.out.strip().splitlines()[-1]
    try:
        created = agentlog("topics", "create", "--partitions", "1", state_dir=tmp_path)
        assert created.code == 0, created.err
        # A connected client during `dev down`: the broker closes its side first.
        client = KafkaConsumer(bootstrap_servers=first)
        assert client.topics()
        down = agentlog("dev", "down", state_dir=tmp_path, env=env)
        assert down.code == 0, down.err
        up = agentlog("dev", "up", state_dir=tmp_path, env=env)
        assert up.code == 0, up.err
        assert up.out.strip().splitlines()[-1] == first
        client.close()
    finally:
        agentlog("dev", "down", "--wipe", state_dir=tmp_path, env=env)

"""How many replicas `topics create` asks for, from the brokers it finds; and the engine
that runs one broker refusing a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.cli import agentlog

from agentlog.settings import Settings
from agentlog.topics import replication_for, topic_specs


@pytest.mark.parametrize(
    ("brokers", "replicas", "min_insync"), [(1, 1, 1), (2, 2, 1), (3, 3, 2), (5, 3, 2)]
)
def test_topics_get_as_many_replicas_as_the_cluster_allows_up_to_three(
    brokers: int, replicas: int, min_insync: int
) -> None:
    assert replication_for(Settings(), brokers) == (replicas, min_insync)
    for spec in topic_specs(Settings(), brokers=brokers):
        assert spec.replication_factor == replicas
        # One replica sets nothing (Tansu, a single broker); more state it on the topic.
        assert spec.config.get("min.insync.replicas") == (str(min_insync) if replicas > 1 else None)


def test_a_replication_factor_set_by_the_user_wins() -> None:
    assert replication_for(Settings(replication_factor=2), 3) == (2, 1)
    assert replication_for(Settings(replication_factor=1), 3) == (1, 1)
    # On a cluster whose brokers default to 2 in sync, a topic of one replica says 1, or
    # no acks=all write to it could succeed.
    for spec in topic_specs(Settings(replication_factor=1), brokers=3):
        assert spec.config["min.insync.replicas"] == "1"


def test_tansu_refuses_a_cluster_in_one_line(tmp_path: Path) -> None:
    run = agentlog("dev", "up", "--engine", "tansu", "--brokers", "3", state_dir=tmp_path)
    assert run.code != 0
    assert run.err.strip().splitlines() == [
        "error: the tansu engine runs one broker; a replicated cluster needs `--engine kafka`"
    ]
    assert not (tmp_path / "dev-broker.json").exists()

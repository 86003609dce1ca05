"""Shared set-up for the benchmark scripts: a broker to measure against."""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from agentlog import devbroker
from agentlog.devbroker import kafka as kafka_engine
from agentlog.settings import Settings
from agentlog.topics import create_topics


def add_broker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap", default=None, help="an existing Kafka (default: a private dev broker)"
    )
    parser.add_argument(
        "--engine",
        choices=devbroker.ENGINES,
        default="tansu",
        help="the private dev broker's engine (default tansu)",
    )


@contextlib.contextmanager
def benchmark_settings(
    bootstrap: str | None, partitions: int, engine: str = "tansu"
) -> Iterator[Settings]:
    """Settings on fresh topics: the given broker, or a private dev broker of `engine`."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory() as state_dir:
        base = Settings(
            state_dir=Path(state_dir),
            topic_prefix=prefix,
            partitions=partitions,
            dev_engine=engine,
            # Share the user's cache of Apache Kafka's jars rather than resolve them again.
            kafka_jars_dir=kafka_engine.jars_dir(Settings()),
            # The figures beside raw confluent-kafka are the direct producer's (the rows of
            # benchmarks/README.md); the spool's write path is measured by the outage tests.
            spool=False,
        )
        broker = None
        if bootstrap is None:
            broker = devbroker.start(base)
            bootstrap = broker.bootstrap
        settings = base.with_overrides(bootstrap_servers=bootstrap)
        try:
            create_topics(settings)
            yield settings
        finally:
            if broker is not None:
                devbroker.stop(base)


def broker_name(settings: Settings, engine_used: bool) -> str:
    """What the figures were measured on."""
    where = f"{settings.dev_engine} dev broker" if engine_used else "given broker"
    return f"{where} at {settings.bootstrap_servers}"

"""`agentlog topics create|describe`."""

from __future__ import annotations

import click

from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.replay.transcript import counted
from agentlog.topics import create_topics, describe_topics


@cli.group()
def topics() -> None:
    """Create and inspect the agentlog topics."""


@topics.command()
@click.option("--partitions", type=click.IntRange(1, 10_000), help="partitions per topic")
@pass_app
def create(app: AppContext, partitions: int | None) -> None:
    """Create the events, tool-requests and dead-letter topics (existing ones are kept)."""
    for name, outcome in create_topics(app.kafka_settings(), partitions).items():
        click.echo(f"{name}: {outcome}")


@topics.command()
@pass_app
def describe(app: AppContext) -> None:
    """Partitions, replication and retention of each topic."""
    for topic in describe_topics(app.kafka_settings()):
        config = ", ".join(f"{k}={v}" for k, v in sorted(topic.config.items()))
        click.echo(
            f"{topic.name}: {counted(topic.partitions, 'partition')}, "
            f"replication {topic.replication_factor}"
            f", {config}"
        )

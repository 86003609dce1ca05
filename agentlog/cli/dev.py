"""`agentlog dev up|status|down`: the embedded broker for development."""

from __future__ import annotations

import click

from agentlog import devbroker
from agentlog.cli._app import AppContext, cli, pass_app


@cli.group()
def dev() -> None:
    """Run the embedded Kafka-compatible broker (Tansu, memory only)."""


@dev.command()
@click.option(
    "--port", type=click.IntRange(1, 65535), help="port on 127.0.0.1 (default: a free one)"
)
@pass_app
def up(app: AppContext, port: int | None) -> None:
    """Start the dev broker in the background and print its bootstrap address."""
    existing = _running_or_none(app)
    broker = devbroker.start(app.settings, port=port)
    verb = "already running" if existing else "started"
    click.echo(f"dev broker {verb} at {broker.bootstrap} (pid {broker.pid})")
    click.echo(f"note: {devbroker.MEMORY_ONLY_WARNING}")
    click.echo(broker.bootstrap)


def _running_or_none(app: AppContext) -> devbroker.DevBroker | None:
    try:
        return devbroker.current(app.settings)
    except devbroker.DevBrokerError:
        return None


@dev.command()
@pass_app
def status(app: AppContext) -> None:
    """Say whether the dev broker runs, and where."""
    broker = devbroker.current(app.settings)
    if broker is None:
        raise click.ClickException("no dev broker is running; start one with `agentlog dev up`")
    click.echo(
        f"dev broker running at {broker.bootstrap} (pid {broker.pid}, log {broker.log_file})"
    )


@dev.command()
@pass_app
def down(app: AppContext) -> None:
    """Stop the dev broker (its in-memory log is lost)."""
    broker = devbroker.stop(app.settings)
    if broker is None:
        click.echo("no dev broker was running")
    else:
        click.echo(f"dev broker at {broker.bootstrap} stopped; its in-memory data is gone")

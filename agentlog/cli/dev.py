"""`agentlog dev up|status|down`: the local broker for development."""

from __future__ import annotations

from pathlib import Path

import click

from agentlog import devbroker
from agentlog.cli._app import AppContext, cli, pass_app
from agentlog.dev_state import DevBrokerRecord
from agentlog.errors import DevBrokerError


@cli.group()
def dev() -> None:
    """Run a local broker: Tansu (memory only, default) or Apache Kafka (on disk)."""


@dev.command()
@click.option(
    "--engine",
    type=click.Choice(devbroker.ENGINES),
    help="tansu (memory only, needs only pip) or kafka (Apache Kafka, needs Java; default: "
    "AGENTLOG_DEV_ENGINE, else tansu)",
)
@click.option(
    "--kafka-home",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="an unpacked Apache Kafka distribution (default: AGENTLOG_KAFKA_HOME, else the "
    "official jars from Maven Central)",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    help="port on 127.0.0.1 (default: a free one; a cluster's first broker)",
)
@click.option(
    "--brokers",
    type=click.IntRange(1, 5),
    help="kafka engine: brokers on loopback, 3 for a replicated cluster (topics get 3 "
    "replicas, writes need 2); default: AGENTLOG_DEV_BROKERS, else 1",
)
@pass_app
def up(
    app: AppContext,
    engine: str | None,
    kafka_home: Path | None,
    port: int | None,
    brokers: int | None,
) -> None:
    """Start the dev broker in the background and print its bootstrap address (a cluster
    with brokers down: start them again)."""
    settings = app.settings.with_overrides(
        dev_engine=engine, kafka_home=kafka_home, dev_brokers=brokers
    )
    existing = _running_or_none(app)
    down_before = len(existing.nodes) - len(existing.running_nodes()) if existing else 0
    # A minute per broker: three JVMs starting at once on a small machine take longer.
    broker = devbroker.start(
        settings,
        port=port,
        wait_seconds=60 * settings.dev_brokers,
        say=lambda line: click.echo(f"note: {line}"),
    )
    if existing and down_before:
        verb = f"running again ({down_before} broker(s) restarted)"
    else:
        verb = "already running" if existing else "started"
    click.echo(f"dev broker {verb}: {_describe(broker)}")
    if broker.memory_only:
        click.echo(f"note: {devbroker.MEMORY_ONLY_WARNING}")
    click.echo(broker.bootstrap)


def _describe(broker: DevBrokerRecord) -> str:
    if len(broker.nodes) > 1:
        return f"{broker.engine} ({broker.version}), {len(broker.nodes)} brokers:" + "".join(
            f"\n  broker {node.node_id} at {node.bootstrap} (controller port "
            f"{node.controller_port}), pid {node.pid}, "
            f"{'running' if node.running else 'DOWN (`agentlog dev up` restarts it)'}, "
            f"data in {node.data_dir}, log {node.log_file}"
            for node in broker.nodes
        )
    where = "memory only" if broker.memory_only else f"data in {broker.data_dir}"
    return (
        f"{broker.engine} ({broker.version}) at {broker.bootstrap}, pid {broker.pid}, {where}, "
        f"log {broker.log_file}"
    )


def _running_or_none(app: AppContext) -> DevBrokerRecord | None:
    try:
        return devbroker.current(app.settings)
    except DevBrokerError:
        return None


@dev.command()
@pass_app
def status(app: AppContext) -> None:
    """Say whether the dev broker runs: engine, version, address, data directory."""
    broker = devbroker.current(app.settings)
    if broker is None:
        raise click.ClickException("no dev broker is running; start one with `agentlog dev up`")
    click.echo(f"dev broker running: {_describe(broker)}")


@dev.command()
@click.option(
    "--wipe",
    is_flag=True,
    help="also delete the kafka engine's on-disk log (what was built from it is moved aside)",
)
@pass_app
def down(app: AppContext, wipe: bool) -> None:
    """Stop the dev broker (Tansu's in-memory log is lost; Kafka's stays on disk)."""
    broker = devbroker.stop(app.settings, wipe=wipe, say=lambda line: click.echo(f"note: {line}"))
    if broker is None:
        click.echo("no dev broker was running")
    elif broker.memory_only:
        click.echo(f"dev broker at {broker.bootstrap} stopped; its in-memory data is gone")
    else:
        where = broker.data_dir
        if len(broker.nodes) > 1:
            where = f"{Path(broker.nodes[0].data_dir).parent}/data-1..{len(broker.nodes)}"
        kept = "deleted" if wipe else f"kept in {where} for the next `dev up`"
        click.echo(f"dev broker at {broker.bootstrap} stopped; its log is {kept}")
    if broker is None and wipe:
        click.echo("the kafka engine's on-disk log was deleted")

"""`agentlog agents run`: run event-driven agents (handlers of an `Agents` object)."""

from __future__ import annotations

import click

from agentlog.cli._app import AppContext, chosen_start, cli, from_option, notice, pass_app
from agentlog.cli._progress import StatusLine, progress_options
from agentlog.cli._signals import until_signalled
from agentlog.consumers.throughput import tune_process_for_throughput
from agentlog.consumers.triggers import load_agents
from agentlog.runtime import agents_runtime
from agentlog.start_from import LATEST


@cli.group()
def agents() -> None:
    """Run agents that react to events on the log (event-driven triggers)."""


@agents.command("run")
@click.argument("reference", metavar="MODULE[:ATTR]")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1000),
    default=8,
    show_default=True,
    help="conversations whose handlers run at once",
)
@click.option("--group", help="consumer group (default agentlog-agents-<name>)")
@click.option(
    "--tool-timeout",
    type=click.FloatRange(min=0.001),
    default=60.0,
    show_default=True,
    help="seconds a handler's tool call waits for its result",
)
@from_option("latest", "triggers react to what happens from now on")
@click.option("--once", is_flag=True, help="stop when every event so far has been handled")
@progress_options
@pass_app
def run(
    app: AppContext,
    reference: str,
    concurrency: int,
    group: str | None,
    tool_timeout: float,
    start_from: str | None,
    once: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Run the handlers of the Agents object in MODULE (or MODULE:ATTR) for the events
    on the log, as one member of its consumer group; start as many as you need.
    SIGINT/SIGTERM let running handlers end, then stop."""
    declared = load_agents(reference)
    start, asked = chosen_start(start_from, LATEST)
    settings = app.kafka_settings()
    # The process runs little but the handlers: hand the GIL between the consumer loop
    # and the handler threads sooner (benchmarks/triggers.py: 11k -> 16k events/s).
    tune_process_for_throughput()
    with (
        StatusLine(f"agents {declared.name}", flag=progress, quiet=quiet) as status,
        agents_runtime(
            settings,
            declared,
            service=f"agentlog-agents-{declared.name}",
            tool_timeout=tool_timeout,
            group=group,
            concurrency=concurrency,
            on_progress=lambda done: status.show(done.line()),
            start=start,
            start_asked=asked,
            notice=notice,
        ) as runtime,
    ):
        with until_signalled(runtime.stop) as signalled:
            done = runtime.run(once=once)
    click.echo(f"agents {declared.name} stopped: {done.line()}")
    # Ctrl-C: handlers that were running ended; an event whose handler was interrupted
    # runs again at the next start. Exit 130, as for any Ctrl-C.
    signalled.raise_if_interrupted(
        "an event whose handler was cut short runs again when `agentlog agents run` starts"
    )

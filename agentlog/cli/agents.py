"""`agentlog agents run`: run event-driven agents (handlers of an `Agents` object)."""

from __future__ import annotations

import signal
import sys

import click

from agentlog.cli._app import AppContext, chosen_start, cli, from_option, notice, pass_app
from agentlog.cli.live_session import LiveSession, Transcripts
from agentlog.consumers.throughput import tune_process_for_throughput
from agentlog.consumers.triggers import (
    TriggerProgress,
    TriggerRuntime,
    load_agents,
    trigger_event_ids,
)
from agentlog.producers import Recorder, ToolClient
from agentlog.start_from import LATEST

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@cli.group()
def agents() -> None:
    """Run agents that react to events on the log (event-driven triggers)."""


def _report(progress: TriggerProgress) -> None:
    if sys.stderr.isatty():
        click.echo(f"\r{progress.line()}   ", nl=False, err=True)
    else:
        click.echo(progress.line(), err=True)


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
@click.option("--quiet", is_flag=True, help="no progress lines on stderr")
@pass_app
def run(
    app: AppContext,
    reference: str,
    concurrency: int,
    group: str | None,
    tool_timeout: float,
    start_from: str | None,
    once: bool,
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
    service = f"agentlog-agents-{declared.name}"
    with (
        Recorder(settings, service=service, new_event_id=trigger_event_ids) as recorder,
        ToolClient(settings, service=service, timeout=tool_timeout) as tools,
    ):
        transcripts = Transcripts()
        runtime = TriggerRuntime(
            settings,
            declared,
            lambda trigger: LiveSession(
                trigger,
                recorder,
                tools,
                tool_timeout,
                llm=declared.llm,
                transcripts=transcripts,
            ),
            group=group,
            concurrency=concurrency,
            on_progress=None if quiet else _report,
            flush=recorder.flush,
            start=start,
            start_asked=asked,
            notice=notice,
        )
        received: list[int] = []

        def stop(signum: int, _frame: object) -> None:
            received.append(signum)
            runtime.stop()

        previous = {s: signal.signal(s, stop) for s in _STOP_SIGNALS}
        try:
            progress = runtime.run(once=once)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"agents {declared.name} stopped: {progress.line()}")
    if signal.SIGINT in received:
        # Ctrl-C: handlers that were running ended; an event whose handler was
        # interrupted runs again at the next start. Exit 130, as for any Ctrl-C.
        raise KeyboardInterrupt

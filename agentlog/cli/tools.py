"""`agentlog tools work`: run a pool member of tool workers."""

from __future__ import annotations

import os
import signal
import sys

import click

from agentlog.cli._app import AppContext, chosen_start, cli, from_option, notice, pass_app
from agentlog.consumers import DEFAULT_TOOL_GROUP, ToolWorker, WorkerProgress, load_registry
from agentlog.start_from import EARLIEST

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@cli.group()
def tools() -> None:
    """Run tool calls that agents request (async tool execution)."""


def _report(progress: WorkerProgress) -> None:
    if sys.stderr.isatty():
        click.echo(f"\r{progress.line()}   ", nl=False, err=True)
    else:
        click.echo(progress.line(), err=True)


@tools.command()
@click.argument("registry", metavar="MODULE:REGISTRY")
@click.option(
    "--concurrency",
    type=click.IntRange(1, 10_000),
    default=8,
    show_default=True,
    help="calls this process runs at once",
)
@click.option(
    "--group",
    default=DEFAULT_TOOL_GROUP,
    show_default=True,
    help="consumer group of the worker pool (every member runs the same registry)",
)
@from_option("earliest", "open calls are run, ended ones are not run again")
@click.option("--once", is_flag=True, help="stop when every request so far has ended")
@click.option("--quiet", is_flag=True, help="no progress lines on stderr")
@pass_app
def work(
    app: AppContext,
    registry: str,
    concurrency: int,
    group: str,
    start_from: str | None,
    once: bool,
    quiet: bool,
) -> None:
    """Run the tools of MODULE:REGISTRY (a ToolRegistry) for the requests on the
    tool-requests topic, as one member of the group; start as many as you need.
    SIGINT/SIGTERM finish the calls in flight, then stop."""
    tool_registry = load_registry(registry)
    start, asked = chosen_start(start_from, EARLIEST)
    settings = app.kafka_settings()
    worker = ToolWorker(
        settings,
        tool_registry,
        group=group,
        concurrency=concurrency,
        on_progress=None if quiet else _report,
        start=start,
        start_asked=asked,
        notice=notice,
    )
    received: list[int] = []

    def stop(signum: int, _frame: object) -> None:
        received.append(signum)
        worker.stop()

    previous = {s: signal.signal(s, stop) for s in _STOP_SIGNALS}
    try:
        progress = worker.run(once=once)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not quiet and sys.stderr.isatty():
        click.echo("", err=True)
    click.echo(f"tool worker stopped: {progress.line()}")
    if worker.tools_still_running:
        # Their threads cannot be stopped, and the interpreter would wait for them at exit.
        click.echo(
            f"note: {worker.tools_still_running} sync tool call(s) still running past their "
            "timeout (their attempts ended as TimeoutError); exiting without them",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130 if signal.SIGINT in received else 0)
    if signal.SIGINT in received:
        raise KeyboardInterrupt  # Ctrl-C: the calls in flight finished; exit 130

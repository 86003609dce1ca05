"""`agentlog tools work`: run a pool member of tool workers."""

from __future__ import annotations

import os
import sys

import click

from agentlog.cli._app import AppContext, chosen_start, cli, from_option, notice, pass_app
from agentlog.cli._progress import StatusLine, progress_options
from agentlog.cli._signals import until_signalled
from agentlog.consumers import DEFAULT_TOOL_GROUP, ToolWorker, load_registry
from agentlog.start_from import EARLIEST


@cli.group()
def tools() -> None:
    """Run tool calls that agents request (async tool execution)."""


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
@progress_options
@pass_app
def work(
    app: AppContext,
    registry: str,
    concurrency: int,
    group: str,
    start_from: str | None,
    once: bool,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Run the tools of MODULE:REGISTRY (a ToolRegistry) for the requests on the
    tool-requests topic, as one member of the group; start as many as you need.
    SIGINT/SIGTERM finish the calls in flight, then stop."""
    tool_registry = load_registry(registry)
    start, asked = chosen_start(start_from, EARLIEST)
    settings = app.kafka_settings()
    with StatusLine("tool worker", flag=progress, quiet=quiet) as status:
        worker = ToolWorker(
            settings,
            tool_registry,
            group=group,
            concurrency=concurrency,
            on_progress=lambda done: status.show(done.line()),
            start=start,
            start_asked=asked,
            notice=notice,
        )
        with until_signalled(worker.stop) as signalled:
            done = worker.run(once=once)
    click.echo(f"tool worker stopped: {done.line()}")
    if worker.tools_still_running:
        # Their threads cannot be stopped, and the interpreter would wait for them at exit.
        click.echo(
            f"note: {worker.tools_still_running} sync tool call(s) still running past their "
            "timeout (their attempts ended as TimeoutError); exiting without them",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(signalled.exit_code())
    signalled.raise_if_interrupted(
        "the calls in flight finished; `agentlog tools work` takes the next requests"
    )

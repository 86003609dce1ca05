"""The root command group and how commands get their settings."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from agentlog.connection import checked_bootstrap, resolved
from agentlog.consumers.sinks import Sink, open_sink
from agentlog.errors import ConfigurationError
from agentlog.private_files import tighten_state_dir
from agentlog.settings import Settings


@dataclass
class AppContext:
    overrides: dict[str, Any] = field(default_factory=dict)
    show_traceback: bool = False
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = Settings().with_overrides(**self.overrides)
            except ValidationError as exc:
                first = exc.errors()[0]
                name = "AGENTLOG_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
                raise ConfigurationError(
                    f"{name}={first.get('input')!r} is not valid: {first['msg']}"
                ) from None
            # The state folder is the user's alone, including one an earlier version
            # made open to others.
            tighten_state_dir(self._settings.state_dir)
            if self._settings.bootstrap_servers is not None:
                # Given, even empty: checked now, before any command falls back on the
                # dev broker (or starts one) for want of it.
                checked_bootstrap(self._settings.bootstrap_servers)
        return self._settings

    def wants_traceback(self) -> bool:
        """`--traceback`, or AGENTLOG_DEBUG=1 (unless the settings are what failed)."""
        if self.show_traceback:
            return True
        try:
            return self.settings.debug
        except ConfigurationError:
            return False

    def kafka_settings(self) -> Settings:
        """The settings with the broker resolved once: flag, env, else the dev broker."""
        return resolved(self.settings)


pass_app = click.make_pass_decorator(AppContext)


@contextmanager
def reading_sink(url: str) -> Iterator[Sink]:
    """The sink opened for reading, saying so when reads see an earlier state."""
    with open_sink(url, read_only=True) as sink:
        if sink.reading_note:
            click.echo(f"note: {sink.reading_note}", err=True)
        yield sink


sink_option = click.option(
    "--sink", metavar="URL", help="duckdb:PATH or postgresql://... (default: AGENTLOG_SINK)"
)


class _Commands(click.Group):
    """The root group. A reader that goes away (`agentlog tail | head -3`) ends the
    command at once, quietly and successfully, as it does for `cat`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # What is still buffered for the closed pipe goes nowhere, so the flush at
            # exit cannot fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(0)


@click.group(
    cls=_Commands,
    context_settings={"help_option_names": ["-h", "--help"]},
    invoke_without_command=True,
)
@click.option(
    "--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers (else env, else dev broker)"
)
@click.option("--topic-prefix", metavar="PREFIX", help="topic name prefix (default agentlog.)")
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="where the dev broker's state lives (default ~/.agentlog)",
)
@click.option(
    "--traceback",
    "show_traceback",
    is_flag=True,
    help="on an error, show its Python traceback too (also AGENTLOG_DEBUG=1)",
)
@click.version_option(package_name="agentlog")
@click.pass_context
def cli(
    ctx: click.Context,
    bootstrap: str | None,
    topic_prefix: str | None,
    state_dir: Path | None,
    show_traceback: bool,
) -> None:
    """agentlog: the flight recorder for AI agents on Kafka."""
    # main() hands in the AppContext, to see --traceback when an error reaches it.
    app = ctx.ensure_object(AppContext)
    app.overrides.update(
        {"bootstrap_servers": bootstrap, "topic_prefix": topic_prefix, "state_dir": state_dir}
    )
    app.show_traceback = show_traceback
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())

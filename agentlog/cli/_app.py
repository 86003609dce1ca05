"""The root command group and how commands get their settings."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError

from agentlog.connection import checked_bootstrap, resolved
from agentlog.consumers.runner import DEFAULT_GROUP
from agentlog.consumers.sinks import Sink, open_sink
from agentlog.errors import ConfigurationError
from agentlog.private_files import tighten_state_dir
from agentlog.settings import Settings, invalid_setting
from agentlog.start_from import StartFrom, parse_start_from


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
                raise ConfigurationError(invalid_setting(exc)) from None
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
def reading_sink(url: str, topic: str | None = None) -> Iterator[Sink]:
    """The sink opened for reading, saying so when reads see an earlier state, and (given
    the events `topic`) when the default projector group started after its beginning."""
    with open_sink(url, read_only=True) as sink:
        if sink.reading_note:
            click.echo(f"note: {sink.reading_note}", err=True)
        if topic is not None:
            partial = partial_note(sink.started_at(DEFAULT_GROUP, topic))
            if partial:
                click.echo(f"note: {partial}", err=True)
        yield sink


def partial_note(started: dict[int, int]) -> str | None:
    """One line saying that the projections lack history, if a partition started late."""
    late = {p: o for p, o in sorted(started.items()) if o > 0}
    if not late:
        return None
    where = ", ".join(f"partition {p} before offset {o:,}" for p, o in late.items())
    return (
        f"PARTIAL: this projection started after the beginning of the log (--from); history "
        f"before it was never applied ({where}): state built from a partial log is partial"
    )


sink_option = click.option(
    "--sink", metavar="URL", help="duckdb:PATH or postgresql://... (default: AGENTLOG_SINK)"
)


F = TypeVar("F", bound=Callable[..., Any])


def from_option(default: str, what: str) -> Callable[[F], F]:
    """`--from earliest|latest|TIME`: where a new group starts (`default` when not given;
    the command gets None then, to tell a default from a choice)."""
    return click.option(
        "--from",
        "start_from",
        metavar="earliest|latest|TIME",
        default=None,
        help=f"where a NEW group starts: earliest, latest (only what happens from now on) or "
        f"an ISO 8601 time; default {default} ({what}); a group with offsets resumes from them",
    )


def chosen_start(text: str | None, default: StartFrom) -> tuple[StartFrom, bool]:
    """The start asked for with --from (and True), else `default` (and False)."""
    if text is None:
        return default, False
    return parse_start_from(text), True


def notice(line: str) -> None:
    """A line for the person running the command (stderr: stdout may be a pipe)."""
    click.echo(line, err=True)


def checked_out(path: Path, option: str = "--out") -> Path:
    """An output path whose directory exists and can be written to, else one line: a
    typing mistake in the directory is not silently created."""
    parent = path.absolute().parent
    if not parent.is_dir():
        raise ConfigurationError(
            f"{option} {path}: the directory {parent} does not exist (create it first)"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigurationError(f"{option} {path}: cannot write in {parent} (permission denied)")
    return path


def command_name() -> str:
    """How to run agentlog again from here, for hints: `agentlog` when that is what PATH
    finds, else the path this one was started by (`.venv/bin/agentlog` after the README's
    install), or `python -m agentlog` with this interpreter."""
    started = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started is None or started.name != "agentlog":
        interpreter = _shown_path(Path(sys.executable))
        return f"{interpreter} -m agentlog"
    on_path = shutil.which("agentlog")
    if on_path is not None and Path(on_path).resolve() == started.resolve():
        return "agentlog"
    return _shown_path(started)


def _shown_path(path: Path) -> str:
    """`path` relative to the current directory when it is under it, else absolute."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


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

"""The one progress convention of the CLI. Long work shows its progress on stderr, drawn
by rich when stderr is a terminal: a bar of events done of total and events/s for work
that ends (archiving, exports, rebuilds), a status line for services (project run, tools
work, agents run). Never into a pipe or a file (stdout carries only results), except that
a service writes its status line once a minute into its log. `--progress` draws it
anyway, `--no-progress` never, `--quiet` shows no progress at all."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

progress_option = click.option(
    "--progress/--no-progress",
    "progress",
    default=None,
    help="a progress bar on stderr (default: when stderr is a terminal)",
)


quiet_option = click.option(
    "--quiet", is_flag=True, help="no progress on stderr (results and errors still show)"
)

_Command = TypeVar("_Command", bound=Callable[..., Any])


def progress_options(command: _Command) -> _Command:
    """`--progress/--no-progress` and `--quiet`, for every command with long work."""
    return progress_option(quiet_option(command))


def wanted(flag: bool | None, quiet: bool = False) -> bool:
    """Whether to draw: never when quiet, else the --progress/--no-progress flag, else
    whether stderr is a terminal."""
    if quiet:
        return False
    return flag if flag is not None else sys.stderr.isatty()


class _Counts(ProgressColumn):
    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,} of {total} {task.fields['unit']}")


class _Rate(ProgressColumn):
    """The average since the start: rich's own speed needs several updates to say any."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        if not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed / elapsed:,.0f} {task.fields['unit']}/s")


class EventProgress:
    """One bar: `update(done, total)` as the work goes; gone when the work ends (the
    command's own summary line follows). Does nothing when not `enabled`."""

    def __init__(self, description: str, *, enabled: bool, unit: str = "events") -> None:
        self.bar: Progress | None = None
        self.task = None
        if enabled:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                _Counts(),
                _Rate(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True, force_terminal=True),
                transient=True,
            )
            self.task = self.bar.add_task(description, total=None, unit=unit)

    def update(self, done: int, total: int | None) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __enter__(self) -> EventProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()


class StatusLine:
    """A service's progress, a line of figures it reports as it goes: drawn by rich on a
    terminal (redrawn in place, gone at the end: the command's summary follows); into a
    log (stderr not a terminal, no flag) once a minute; else nowhere."""

    LOG_EVERY_S = 60.0

    def __init__(self, description: str, *, flag: bool | None, quiet: bool) -> None:
        self.drawn = wanted(flag, quiet)
        self.logged = not quiet and flag is None and not self.drawn
        # The first line a minute in: at the start every figure is still 0, which the
        # command's own summary would contradict in a short run.
        self._last_logged = time.monotonic()
        self.bar: Progress | None = None
        self.task = None
        if self.drawn:
            self.bar = Progress(
                TextColumn("{task.description}", markup=False),
                TextColumn("{task.fields[line]}", markup=False),
                TimeElapsedColumn(),
                console=Console(stderr=True, force_terminal=True),
                transient=True,
            )
            self.task = self.bar.add_task(description, total=None, line="")

    def show(self, line: str) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, line=line)
        elif self.logged:
            now = time.monotonic()
            if now - self._last_logged >= self.LOG_EVERY_S:
                self._last_logged = now
                click.echo(line, err=True)

    def __enter__(self) -> StatusLine:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.stop()

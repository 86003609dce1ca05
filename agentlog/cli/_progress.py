"""Progress bars for long work (archiving, exports): events done of total and events/s,
drawn on stderr when it is a terminal, and never into a pipe or a file (stdout carries
only results). `--progress` draws it anyway, `--no-progress` never."""

from __future__ import annotations

import sys
from types import TracebackType

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


def wanted(flag: bool | None) -> bool:
    """The --progress/--no-progress flag, else whether stderr is a terminal."""
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

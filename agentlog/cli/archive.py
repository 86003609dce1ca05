"""`agentlog archive run|status`: the Parquet archive of the event log."""

from __future__ import annotations

from pathlib import Path

import click

from agentlog.analytics.archive_files import archive_files, topic_root
from agentlog.analytics.archive_start import archived_up_to, read_start
from agentlog.analytics.archiver import ArchiveProgress, Archiver, ProgressCallback
from agentlog.analytics.log_check import check_same_log
from agentlog.cli._app import AppContext, chosen_start, cli, from_option, notice, pass_app
from agentlog.cli._progress import EventProgress, progress_options, wanted
from agentlog.cli._signals import until_signalled
from agentlog.errors import ArchiveError
from agentlog.reader import partition_ends
from agentlog.replay.transcript import counted
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="the archive (default: AGENTLOG_ARCHIVE_DIR, else STATE_DIR/archive)",
)


@cli.group()
def archive() -> None:
    """Keep the event log as Parquet files by day: history that outlives Kafka's retention."""


def archiving_progress(bar: EventProgress) -> ProgressCallback:
    """The archiver's reports as the bar's events archived of (archived + lag)."""

    def report(progress: ArchiveProgress) -> None:
        total = None if progress.lag is None else progress.archived + progress.lag
        bar.update(progress.archived, total)

    return report


@archive.command()
@dir_option
@click.option("--once", is_flag=True, help="stop when archived up to the partition ends")
@from_option("earliest", "the archive keeps every event")
@progress_options
@pass_app
def run(
    app: AppContext,
    directory: Path | None,
    once: bool,
    start_from: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Archive the event log; SIGINT/SIGTERM write what is held, then stop."""
    settings = app.kafka_settings().with_overrides(archive_dir=directory)
    start, asked = chosen_start(start_from, EARLIEST)
    _say_where_it_starts(settings, start, asked)
    with EventProgress("archiving", enabled=wanted(progress, quiet), unit="records") as bar:
        archiver = Archiver(settings, on_progress=archiving_progress(bar), start=start)
        with until_signalled(archiver.stop) as signalled:
            done = archiver.run(once=once)
        archiving_progress(bar)(done)  # the last word, also for a run shorter than a report
    for note in done.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"archived {counted(done.archived, 'record')} of {settings.events_topic} into "
        f"{archiver.root} ({counted(done.files, 'file')} written, {done.undecodable:,} "
        f"undecodable kept as bytes)"
    )
    signalled.raise_if_interrupted(
        "what was held is written; `agentlog archive run` archives the rest from there"
    )


def _say_where_it_starts(settings: Settings, start: StartFrom, asked: bool) -> None:
    """The rules of `project run --from`: a new archive starts where it is told (and says
    so); one with files or a start resumes from them, and a --from asked for is ignored."""
    root = topic_root(settings.archive_root, settings.events_topic)
    if archive_files(root) or read_start(root) is not None:
        if asked:
            notice(
                f"the archive at {settings.archive_root} resumes after its files: --from "
                f"{start.option} applies only to a new archive"
            )
        return
    notice(
        f"new archive at {settings.archive_root}: starting {start.describe()} of "
        f"{settings.events_topic} (--from earliest|latest|TIME chooses)"
    )
    if start.kind != "earliest":
        notice(
            f"WARNING: events before the start are never archived: the archive at "
            f"{settings.archive_root} is PARTIAL (its start is kept in it; `agentlog archive "
            "status` and the exports say so); archive with --from earliest into a new --dir "
            "for all of it"
        )


@archive.command()
@dir_option
@pass_app
def status(app: AppContext, directory: Path | None) -> None:
    """Offsets archived per partition against the partition ends."""
    settings = app.kafka_settings().with_overrides(archive_dir=directory)
    topic = settings.events_topic
    root = topic_root(settings.archive_root, topic)
    files = archive_files(root)
    start = read_start(root)
    archived = archived_up_to(start, files)
    ends = partition_ends(settings, topic, archived)
    # The check `archive run` makes: offsets compared with another log's mean nothing.
    try:
        notes, other_log = check_same_log(settings, topic, root, files, len(ends)), None
    except ArchiveError as exc:
        notes, other_log = [], exc
    click.echo(f"{topic} -> {root} ({counted(len(files), 'file')})")
    total = 0
    late = start.late if start else {}
    for partition in sorted(ends):
        done, end = archived.get(partition, 0), ends[partition]
        total += max(0, end - done)
        click.echo(
            f"  partition {partition}: archived up to {done:,} of {end:,}"
            + (
                f" (started at offset {late[partition]:,}: offsets before it never archived)"
                if partition in late
                else ""
            )
        )
    if other_log is not None:
        raise other_log
    for note in notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"not archived yet: {counted(total, 'record')}")
    partial = start.partial_note() if start else None
    if partial:
        click.echo(partial)

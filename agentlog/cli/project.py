"""`agentlog project run|status`: run projections, and see how far they are."""

from __future__ import annotations

import click

from agentlog.cli._app import (
    AppContext,
    chosen_start,
    cli,
    from_option,
    notice,
    partial_note,
    pass_app,
    reading_sink,
    sink_option,
)
from agentlog.cli._progress import StatusLine, progress_options
from agentlog.cli._signals import stopped_by_ctrl_c, until_signalled
from agentlog.consumers import (
    BUILT_IN,
    DEFAULT_GROUP,
    Progress,
    ProjectionRunner,
    load_projection,
    open_sink,
    tune_process_for_throughput,
)
from agentlog.consumers.dead_letters import dead_letters_of
from agentlog.consumers.log_check import check_identity, check_last_applied
from agentlog.reader import partition_ends
from agentlog.replay.transcript import counted
from agentlog.settings import Settings
from agentlog.start_from import EARLIEST, StartFrom
from agentlog.topics import topic_identity

group_option = click.option(
    "--group", default=DEFAULT_GROUP, show_default=True, help="consumer group of the projector"
)


@cli.group()
def project() -> None:
    """Project the event log into queryable state, exactly once."""


def _line(progress: Progress) -> str:
    lag = "?" if progress.lag is None else f"{progress.lag:,}"
    return (
        f"applied {progress.applied:,} events ({progress.rate:,.0f}/s), lag {lag}, "
        f"duplicates {progress.duplicates:,}, dead-lettered {progress.dead_lettered:,}"
    )


def run_projections(
    settings: Settings,
    *,
    projections: tuple[str, ...] = (),
    group: str = DEFAULT_GROUP,
    once: bool = False,
    batch_size: int = 10_000,
    quiet: bool = False,
    progress: bool | None = None,
    start: StartFrom = EARLIEST,
    asked: bool = False,
) -> Progress:
    """Run the projector until caught up (`once`) or until SIGINT/SIGTERM. `start`: where
    a group with no offsets in the sink starts (`asked`: chosen, so say when ignored).
    `quiet`: no notices and no progress; `progress`: the --progress/--no-progress flag."""
    chosen = [load_projection(name) for name in projections or tuple(BUILT_IN)]
    topic = settings.events_topic
    with (
        open_sink(settings.sink_url) as sink,
        StatusLine("projecting", flag=progress, quiet=quiet) as status,
    ):
        if sink.stored_offsets(group, topic):
            if asked and not quiet:
                notice(
                    f"group {group} resumes from its offsets in {settings.sink_shown}: --from "
                    f"{start.option} applies only to a new projection"
                )
        elif not quiet:
            notice(
                f"new group {group}: starting {start.describe()} of {topic} "
                "(--from earliest|latest|TIME chooses)"
            )
            if start.kind != "earliest":
                notice(
                    f"WARNING: events before the start are never applied: the projections in "
                    f"{settings.sink_shown} hold PARTIAL state (`agentlog project status` shows "
                    "where each partition starts); project with --from earliest for all of it"
                )
        runner = ProjectionRunner(
            settings,
            sink,
            chosen,
            group=group,
            batch_size=batch_size,
            on_progress=lambda done: status.show(_line(done)),
            start=start,
        )
        with until_signalled(runner.stop) as signalled:
            done = runner.run(once=once)
    done.interrupted = signalled.interrupted
    return done


@project.command()
@sink_option
@click.option(
    "--projection",
    "projections",
    multiple=True,
    metavar="NAME",
    help=f"built-in ({', '.join(BUILT_IN)}) or module:Class; repeatable (default: all built-in)",
)
@group_option
@click.option("--once", is_flag=True, help="stop when caught up with the partition ends")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=10_000, show_default=True)
@from_option("earliest", "a projection builds its state from every event")
@progress_options
@pass_app
def run(
    app: AppContext,
    sink: str | None,
    projections: tuple[str, ...],
    group: str,
    once: bool,
    batch_size: int,
    start_from: str | None,
    progress: bool | None,
    quiet: bool,
) -> None:
    """Fold events into the sink; SIGINT/SIGTERM stop after the batch in hand."""
    settings = app.kafka_settings().with_overrides(sink=sink)
    start, asked = chosen_start(start_from, EARLIEST)
    # This process only projects: let it tune the garbage collector and the GIL for that.
    tune_process_for_throughput()
    done = run_projections(
        settings,
        projections=projections,
        group=group,
        once=once,
        batch_size=batch_size,
        quiet=quiet,
        progress=progress,
        start=start,
        asked=asked,
    )
    lost = (
        f"; {done.lost_to_retention:,} deleted by retention before they were applied"
        if done.lost_to_retention
        else ""
    )
    click.echo(
        f"applied {counted(done.applied, 'event')} into {settings.sink_shown} "
        f"({done.duplicates:,} duplicates skipped, {done.dead_lettered:,} "
        f"dead-lettered to {settings.dlq_topic}{lost})"
    )
    if done.interrupted:
        stopped_by_ctrl_c(
            "the batch in hand is stored; `agentlog project run` applies the rest from there"
        )


@project.command()
@sink_option
@group_option
@pass_app
def status(app: AppContext, sink: str | None, group: str) -> None:
    """Offsets applied per partition against the partition ends."""
    settings = app.kafka_settings().with_overrides(sink=sink)
    topic = settings.events_topic
    with reading_sink(settings.sink_url) as opened:
        stored = opened.stored_offsets(group, topic)
        applied_log = opened.stored_log(group, topic)
        last = opened.last_applied(group, topic)
        started = opened.started_at(group, topic)
        described = opened.description
    identity = topic_identity(settings, topic)
    # Offsets of another log would be compared with this one's ends: refuse instead.
    if applied_log is not None:
        check_identity(identity, applied_log, group, described)
    check_last_applied(settings, topic, last, described)
    ends = partition_ends(settings, topic, stored)
    click.echo(f"group {group} on {topic} -> {settings.sink_shown}")
    total = 0
    for partition in range(identity.partitions):
        applied = stored.get(partition, 0)
        end = ends[partition]
        total += max(0, end - applied)
        skipped = started.get(partition, 0)
        click.echo(
            f"  partition {partition}: applied up to {applied:,} of {end:,}, lag {end - applied:,}"
            + (
                f" (started at offset {skipped:,}: offsets before it never applied)"
                if skipped
                else ""
            )
        )
    click.echo(f"total lag: {counted(total, 'event')}")
    note = partial_note(started)
    if note:
        click.echo(note)
    letters = dead_letters_of(settings, group)
    click.echo(
        f"dead letters: {len(letters):,} on {settings.dlq_topic}"
        + (" (see them: agentlog tail --topic dlq --from-beginning)" if letters else "")
    )
